// Ensembles: E models of one architecture trained as one batched model.
//
// In an ensemble every parameter holds a leading member dimension (E, solo
// shape...), and activations hold the members' sequences one after another
// along the batch dimension, (E*B, ...), member 0's first. A solo model's
// parameters have no member dimension. The helpers here take both forms, so
// a layer is written once: a projection is a matmul solo and a batched matmul
// (one weight per member) in an ensemble; a vector parameter broadcasts over
// its member's rows. Mixer ops have no parameters of their own and see E*B
// sequences; ops that take per-head parameters (SSD's A and D) see the
// members folded into the heads (members_to_heads).
#pragma once

#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace bla::mixers {

// The members `param` holds: 0 when it has its solo rank (no member dimension).
int64_t members_of(const torch::Tensor& param, int64_t solo_rank);

// `param` shaped to broadcast against x (E*B, ...): a solo parameter as it
// is; a stacked one (E, solo shape) as (E*B, 1, ..., solo shape), x.dim() dims.
torch::Tensor per_member(const torch::Tensor& param, int64_t solo_rank, const torch::Tensor& x);

// x (..., in) times weight^T (+ bias): weight (out, in) solo, or (E, out, in)
// with bias (E, out) in an ensemble, x's leading dimension then E*B.
torch::Tensor project(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& x);
torch::Tensor project(const torch::nn::Linear& linear, const torch::Tensor& x);

// x through several projections that read it, as one product: their
// weights stacked along `out` (a copy of the weights, not of x), each
// projection's followed by zero columns up to a multiple of
// kStackedRowMultiple outputs, then the output split back, one tensor per
// projection in order: views of one product, each starting at a multiple of
// kStackedRowMultiple columns, the padded width each view's row stride; a
// projection's bias is added to its view after the product (a view with a
// bias is then a tensor of its own, in the promoted dtype: under bf16
// autocast a float32 bias gives float32, unrounded). x is read once and its gradient comes
// out of one product, where separate projections read it, cast it under
// autocast, and sum their gradients, once each. The padding makes each row
// and each view's start 16 bytes aligned in bf16, as cuBLAS's fastest
// tensor-core kernels, the vectorised loads of the kernels reading q, k, v
// and the vectorised concatenation of the views' gradients need (GatedFWA's
// 3 * 768 + 12 outputs at 125M are a row of 4,632 bytes without it); the
// biases after the product keep the product's bias gradient, a sum over every
// row, to the columns that have one (GatedFWA's gate: 12 of 2,320).
inline constexpr int64_t kStackedRowMultiple = 8;
std::vector<torch::Tensor> project_stacked(const std::vector<torch::nn::Linear>& linears, const torch::Tensor& x);
// The same product before the split: (..., sum of outs), the projections'
// outputs side by side in order.
torch::Tensor project_joined(const std::vector<torch::nn::Linear>& linears, const torch::Tensor& x);

// Rows of an embedding table for tokens (E*B, ...): weight (V, d) or (E, V, d).
torch::Tensor embed(const torch::Tensor& weight, const torch::Tensor& tokens);

// x (E*B, T, H, ...) -> (B, T, E*H, ...), member e's head h at e*H + h; and back.
torch::Tensor members_to_heads(const torch::Tensor& x, int64_t members);
torch::Tensor heads_to_members(const torch::Tensor& x, int64_t members);

}  // namespace bla::mixers
