// Pieces every mixer layer shares: head layout read from config, linear
// projections with the project's initialisation, and rotary embeddings.
#pragma once

#include "bla/config/schema.h"
#include "bla/mixers/common/members.h"
#include "bla/mixers/mixer.h"

#include <torch/nn/modules/linear.h>

#include <utility>

namespace bla::mixers {

struct HeadLayout {
  int64_t heads = 0;
  int64_t head_dim = 0;  // for queries and keys
  int64_t value_dim = 0;
  int64_t inner() const { return heads * head_dim; }
  int64_t value_inner() const { return heads * value_dim; }
};

// The declared keys `heads` (default model.heads) and `head_dim` (default
// d_model / heads), for the schemas of the mixers that read them.
const config::Key& heads_key();
const config::Key& head_dim_key();
// `rope` (with this default) and `rope_base`.
std::vector<config::Key> rope_keys(bool rope_default);

// Reads `heads` and `head_dim` from the mixer's section.
HeadLayout read_head_layout(config::Section& params, const MixerContext& ctx);

// A bias-free linear layer initialised N(0, std).
torch::nn::Linear make_projection(int64_t in, int64_t out, double std = 0.02);

// Rotary position embedding (rotate-half form) on x (B, T, H, D) whose first
// token has position `start`. D must be even.
// On CUDA a fused kernel (kernels/model_rotary.cu) where it takes x, else
// apply_rotary_libtorch, the LibTorch form (what runs on the CPU).
torch::Tensor apply_rotary(const torch::Tensor& x, int64_t start, double base);
torch::Tensor apply_rotary_libtorch(const torch::Tensor& x, int64_t start, double base);

// Softmax in float32 at least (bf16 loses too much), float64 kept as is;
// the result has x's dtype.
torch::Tensor stable_softmax(const torch::Tensor& x, int64_t dim);

// Splits (B, T, H*D) into (B, T, H, D); merges back.
torch::Tensor split_heads(const torch::Tensor& x, int64_t heads);
torch::Tensor merge_heads(const torch::Tensor& x);

// Queries, keys and values of x (B, T, d_model), each split into heads
// (B, T, H, D), with rotary embeddings on q and k (first token at position
// `start`) when `rope` is set: the input side of every softmax-attention
// layer, for the full forward (start 0) and the decode step (T = 1). The
// three come out of one product (project_stacked), as views of its output.
struct HeadProjections {
  torch::Tensor q, k, v;
};
HeadProjections project_heads(const torch::Tensor& x, torch::nn::Linear q_proj, torch::nn::Linear k_proj,
                              torch::nn::Linear v_proj, int64_t heads, bool rope, double rope_base,
                              int64_t start);
// The same with one more projection of x in that product (GatedFWA's gate,
// which has a bias): the heads, and that projection's output (..., out).
std::pair<HeadProjections, torch::Tensor> project_heads_and(const torch::Tensor& x, torch::nn::Linear q_proj,
                                                            torch::nn::Linear k_proj, torch::nn::Linear v_proj,
                                                            torch::nn::Linear more, int64_t heads, bool rope,
                                                            double rope_base, int64_t start);

}  // namespace bla::mixers
