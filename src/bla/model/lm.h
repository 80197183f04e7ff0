// Decoder-only language model: embeddings, blocks of
// (RMSNorm, [short convolution,] mixer, residual, RMSNorm, SwiGLU MLP, residual)
// (model.short_conv adds the convolution, model.mlp: none drops the MLP half),
// final RMSNorm and an LM head (tied to the embeddings or not). Mixers come
// from the registry.
#pragma once

#include "bla/config/config.h"
#include "bla/mixers/common/norm.h"
#include "bla/mixers/common/short_conv.h"
#include "bla/mixers/mixer.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace bla::model {

// The LibTorch form of SwiGLU's activation silu(gate) * up: what runs on the
// CPU, and on CUDA wherever the fused kernel (kernels/model_swiglu.cu) does
// not; the CUDA tests hold the kernel to it. RMSNorm is mixers/common/norm.h.
torch::Tensor swiglu_activation_libtorch(const torch::Tensor& gate, const torch::Tensor& up);

using mixers::RMSNorm;

class SwiGLUImpl : public torch::nn::Module {
 public:
  SwiGLUImpl(int64_t d_model, int64_t hidden, double std);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear gate_{nullptr}, up_{nullptr}, down_{nullptr};
};
TORCH_MODULE(SwiGLU);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const config::ModelConfig& cfg, std::shared_ptr<mixers::MixerImpl> mixer);
  // The block on the residual stream x, whose last branch output `pending`
  // (the block before's; undefined for the first) is not yet added: its first
  // norm adds it (RMSNormImpl::after_add, one kernel on CUDA). Returns the
  // stream with this block's branches but the last added, and that last one's
  // output, which the next norm adds.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& pending);
  torch::Tensor step(const torch::Tensor& x, mixers::MixerState& state);
  mixers::MixerImpl& mixer() { return *mixer_; }
  const mixers::MixerImpl& mixer() const { return *mixer_; }
  // The layer's decoding state: the mixer's, plus the short convolution's cache ("short_conv").
  mixers::MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const;
  // Numbers the layer keeps per sequence to decode after `context` tokens: the mixer's and the convolution's cache.
  int64_t state_numel(int64_t context) const;

 private:
  RMSNorm mixer_norm_{nullptr}, mlp_norm_{nullptr};
  mixers::ShortConv short_conv_{nullptr};  // null without model.short_conv
  std::shared_ptr<mixers::MixerImpl> mixer_;
  SwiGLU mlp_{nullptr};
};
TORCH_MODULE(Block);

// Decoding state of the whole model: one MixerState per layer.
struct DecodeState {
  std::vector<mixers::MixerState> layers;
  int64_t bytes() const;
};

class LanguageModelImpl : public torch::nn::Module {
 public:
  // Builds the mixers from cfg.mixers (reading their parameter sections).
  LanguageModelImpl(const config::ModelConfig& cfg, int64_t vocab_size, int64_t max_seq_len);

  // tokens (B, T) int64 -> final hidden states (B, T, d_model), normalised
  // (bf16 under CUDA bf16 autocast: only the LM head's product reads them).
  torch::Tensor hidden(const torch::Tensor& tokens);
  // hidden (..., d_model) -> logits (..., vocab).
  torch::Tensor logits(const torch::Tensor& hidden);
  torch::Tensor forward(const torch::Tensor& tokens) { return logits(hidden(tokens)); }
  // The LM head's matrix (vocab, d_model): the embedding when tied.
  torch::Tensor head_weight() const { return head_ ? head_->weight : embedding_->weight; }

  DecodeState initial_state(int64_t batch, const torch::TensorOptions& options) const;
  // token (B,) int64 -> logits (B, vocab) for the next token.
  torch::Tensor step(const torch::Tensor& token, DecodeState& state);

  int64_t num_parameters() const;
  int64_t vocab_size() const { return vocab_size_; }
  int64_t num_layers() const { return static_cast<int64_t>(blocks_.size()); }
  const mixers::MixerImpl& mixer(int64_t layer) const { return blocks_[layer]->mixer(); }
  // Numbers layer `layer` keeps per sequence (batch 1) to decode after `context` tokens.
  int64_t state_numel(int64_t layer, int64_t context) const { return blocks_[layer]->state_numel(context); }

 private:
  int64_t vocab_size_;
  torch::nn::Embedding embedding_{nullptr};
  std::vector<Block> blocks_;
  torch::nn::ModuleList block_list_{nullptr};
  RMSNorm final_norm_{nullptr};
  torch::nn::Linear head_{nullptr};  // null when tied
};
TORCH_MODULE(LanguageModel);

}  // namespace bla::model
