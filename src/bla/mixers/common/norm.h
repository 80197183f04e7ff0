// RMSNorm, the one normalisation of the project: the model's pre-norms and
// final norm (the RMSNorm module) and the mixers' output norms (GLA and GSA
// per head, the Mamba2-like layer per group of channels) all call rms_norm.
//
//   rms_norm(x) = x / sqrt(mean(x^2 over the last dim) + eps) * weight
//
// The mean square is taken in float32 at least (bfloat16 loses too much) and
// the result is in x's dtype. With `groups` > 1 the last dimension is split
// into that many equal groups, each normalised on its own. On CUDA the
// ungrouped form runs the fused kernels (kernels/model_norm.cu) where they
// apply; BLA_MODEL_KERNELS=0 (or BLA_KERNELS=0) turns them off. A weight may
// hold one row per ensemble member (mixers/common/members.h). eps is
// model.norm_eps.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <utility>

namespace bla::mixers {

// The LibTorch form: what runs on the CPU, and on CUDA wherever the fused
// kernels do not; the CUDA tests hold the kernels to it.
torch::Tensor rms_norm_libtorch(const torch::Tensor& x, const torch::Tensor& weight, double eps, int64_t groups = 1);

// x (..., D); weight (D), or (E, D) in an ensemble whose x is (E*B, ...).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, int64_t groups = 1);

// rms_norm of an input to bf16 products (projections) alone: under CUDA
// autocast a float32 x gives a bf16 result, the values the products' own cast
// would give, without that cast's pass over memory (nor its gradient's back);
// elsewhere rms_norm itself.
torch::Tensor rms_norm_into_products(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// A branch's output res added to the residual stream x, and the norm of the
// sum for the next branch: {s = x + res, rms_norm(s)} (rms_norm_into_products
// with into_products). On CUDA one kernel each way (kernels/model_norm.cu):
// the add, and in the backward the sum of s's two gradients and their cast to
// res's dtype, inside the norm's passes; the same values as the two ops.
std::pair<torch::Tensor, torch::Tensor> rms_norm_after_add(const torch::Tensor& x, const torch::Tensor& res,
                                                           const torch::Tensor& weight, double eps,
                                                           bool into_products);

// RMSNorm over the last dimension with a learned weight (initialised to 1).
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x) { return rms_norm(x, weight_, eps_); }
  // For an x whose norm only bf16 products read (rms_norm_into_products).
  torch::Tensor into_products(const torch::Tensor& x) { return rms_norm_into_products(x, weight_, eps_); }
  // {x + res, its norm} (rms_norm_after_add; into_products's output where
  // to_products); with res undefined {x, x's norm}.
  std::pair<torch::Tensor, torch::Tensor> after_add(const torch::Tensor& x, const torch::Tensor& res,
                                                    bool to_products);

 private:
  torch::Tensor weight_;
  double eps_;
};
TORCH_MODULE(RMSNorm);

}  // namespace bla::mixers
