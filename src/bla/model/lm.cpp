#include "bla/model/lm.h"

#include "bla/mixers/common/heads.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/model.h"
#endif

#include <torch/torch.h>

#include <cmath>
#include <string>
#include <tuple>
#include <utility>

namespace bla::model {
namespace {

// The short convolution's decode cache in a layer's MixerState (no mixer uses this name).
constexpr const char* kShortConvCache = "short_conv";

}  // namespace

torch::Tensor swiglu_activation_libtorch(const torch::Tensor& gate, const torch::Tensor& up) {
  return torch::silu(gate) * up;
}

SwiGLUImpl::SwiGLUImpl(int64_t d_model, int64_t hidden, double std) {
  gate_ = register_module("gate", mixers::make_projection(d_model, hidden, std));
  up_ = register_module("up", mixers::make_projection(d_model, hidden, std));
  down_ = register_module("down", mixers::make_projection(hidden, d_model, std));
}

namespace {

// silu(gate) * up: one fused kernel each way on CUDA, else LibTorch's ops.
torch::Tensor swiglu_activation(const torch::Tensor& gate, const torch::Tensor& up) {
  if (gate.is_cuda()) {
#ifdef BLA_HAVE_CUDA_KERNELS
    std::string why = "turned off by BLA_KERNELS=0";
    if (ops::model_kernels_enabled() && kernels::swiglu_supported(gate, up, &why)) return kernels::swiglu_autograd(gate, up);
    ops::note_kernel_fallback("swiglu", why);
#else
    ops::note_kernel_fallback("swiglu", "bla-train was built without its CUDA kernels");
#endif
  }
  return swiglu_activation_libtorch(gate, up);
}

// The same on one joined product (..., 2H): gate in the first H columns, up in the last.
torch::Tensor swiglu_activation_joined(const torch::Tensor& joined) {
#ifdef BLA_HAVE_CUDA_KERNELS
  std::string why = "turned off by BLA_KERNELS=0";
  if (ops::model_kernels_enabled() && kernels::swiglu_joined_supported(joined, &why))
    return kernels::swiglu_joined_autograd(joined);
  ops::note_kernel_fallback("swiglu", why);
#else
  ops::note_kernel_fallback("swiglu", "bla-train was built without its CUDA kernels");
#endif
  const auto halves = joined.chunk(2, -1);
  return swiglu_activation_libtorch(halves[0], halves[1]);
}

}  // namespace

torch::Tensor SwiGLUImpl::forward(const torch::Tensor& x) {
  using mixers::project;
  // On CUDA gate and up are one product (x read once, its gradient out of one
  // product); the CPU keeps the two products its tests were written against.
  if (x.is_cuda()) return project(down_, swiglu_activation_joined(mixers::project_joined({gate_, up_}, x)));
  return project(down_, swiglu_activation(project(gate_, x), project(up_, x)));
}

BlockImpl::BlockImpl(const config::ModelConfig& cfg, std::shared_ptr<mixers::MixerImpl> mixer) : mixer_(std::move(mixer)) {
  mixer_norm_ = register_module("mixer_norm", RMSNorm(cfg.d_model, cfg.norm_eps));
  if (cfg.short_conv > 0) short_conv_ = register_module("short_conv", mixers::ShortConv(cfg.d_model, cfg.short_conv));
  register_module("mixer", mixer_);
  if (cfg.mlp == "swiglu") {
    mlp_norm_ = register_module("mlp_norm", RMSNorm(cfg.d_model, cfg.norm_eps));
    // LLaMA's sizing: 2/3 of mlp_ratio * d_model, rounded up to a multiple of 8.
    int64_t hidden = static_cast<int64_t>(std::llround(cfg.mlp_ratio * cfg.d_model * 2.0 / 3.0));
    hidden = (hidden + 7) / 8 * 8;
    mlp_ = register_module("mlp", SwiGLU(cfg.d_model, hidden, cfg.init_std));
  }
}

std::pair<torch::Tensor, torch::Tensor> BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& pending) {
  const bool one_product = !short_conv_ && mixer_->reads_input_in_one_product();
  auto [stream, h] = mixer_norm_->after_add(x, pending, one_product);
  if (short_conv_) h = short_conv_(h);
  auto out = mixer_->forward(h);
  if (!mlp_) return {stream, out};
  // On CUDA the MLP reads its input in one product (SwiGLUImpl::forward).
  auto [stream2, h2] = mlp_norm_->after_add(stream, out, stream.is_cuda());
  return {stream2, mlp_(h2)};
}

torch::Tensor BlockImpl::step(const torch::Tensor& x, mixers::MixerState& state) {
  auto h = mixer_norm_(x);
  if (short_conv_) h = short_conv_->step(h, state.tensors.at(kShortConvCache));
  const auto stream = x + mixer_->step(h, state);
  return mlp_ ? stream + mlp_(mlp_norm_(stream)) : stream;
}

mixers::MixerState BlockImpl::initial_state(int64_t batch, const torch::TensorOptions& options) const {
  auto state = mixer_->initial_state(batch, options);
  if (short_conv_) state.tensors[kShortConvCache] = short_conv_->initial_cache(batch, options);
  return state;
}

int64_t BlockImpl::state_numel(int64_t context) const {
  return mixer_->state_numel(context) + (short_conv_ ? short_conv_->cache_numel() : 0);
}

int64_t DecodeState::bytes() const {
  int64_t total = 0;
  for (const auto& layer : layers) total += layer.bytes();
  return total;
}

LanguageModelImpl::LanguageModelImpl(const config::ModelConfig& cfg, int64_t vocab_size, int64_t max_seq_len)
    : vocab_size_(vocab_size) {
  embedding_ = register_module("embedding", torch::nn::Embedding(vocab_size, cfg.d_model));
  {
    torch::NoGradGuard no_grad;
    embedding_->weight.normal_(0.0, cfg.init_std);
  }
  block_list_ = register_module("blocks", torch::nn::ModuleList());
  const auto& registry = mixers::MixerRegistry::instance();
  for (int64_t layer = 0; layer < cfg.layers; ++layer) {
    const auto& spec = cfg.mixers.at(static_cast<size_t>(layer));
    mixers::MixerContext ctx{cfg.d_model, cfg.heads, layer, max_seq_len, cfg.norm_eps};
    auto mixer = registry.get(spec.type, *spec.params, "type").make(*spec.params, ctx);
    Block block(cfg, mixer);
    blocks_.push_back(block);
    block_list_->push_back(block);
  }
  final_norm_ = register_module("final_norm", RMSNorm(cfg.d_model, cfg.norm_eps));
  if (!cfg.tie_embeddings) head_ = register_module("head", mixers::make_projection(cfg.d_model, vocab_size, cfg.init_std));
}

torch::Tensor LanguageModelImpl::hidden(const torch::Tensor& tokens) {
  auto x = mixers::members_of(embedding_->weight, 2) > 0 ? mixers::embed(embedding_->weight, tokens) : embedding_(tokens);
  torch::Tensor pending;  // the last branch output, added by the next norm
  for (auto& block : blocks_) std::tie(x, pending) = block->forward(x, pending);
  return final_norm_->after_add(x, pending, /*to_products=*/true).second;  // read by the LM head's product alone
}

torch::Tensor LanguageModelImpl::logits(const torch::Tensor& hidden) {
  if (head_) return mixers::project(head_, hidden);
  return mixers::project(embedding_->weight.to(hidden.scalar_type()), torch::Tensor(), hidden);
}

DecodeState LanguageModelImpl::initial_state(int64_t batch, const torch::TensorOptions& options) const {
  DecodeState state;
  for (const auto& block : blocks_) state.layers.push_back(block->initial_state(batch, options));
  return state;
}

torch::Tensor LanguageModelImpl::step(const torch::Tensor& token, DecodeState& state) {
  auto x = embedding_(token);
  for (size_t i = 0; i < blocks_.size(); ++i) x = blocks_[i]->step(x, state.layers[i]);
  return logits(final_norm_(x));
}

int64_t LanguageModelImpl::num_parameters() const {
  int64_t total = 0;
  for (const auto& p : parameters()) total += p.numel();
  return total;
}

}  // namespace bla::model
