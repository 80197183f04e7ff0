#include "bla/mixers/common/norm.h"

#include "bla/compat.h"
#include "bla/mixers/common/members.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/model.h"
#endif

#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace bla::mixers {

torch::Tensor rms_norm_libtorch(const torch::Tensor& x, const torch::Tensor& weight, double eps, int64_t groups) {
  auto xf = x.scalar_type() == torch::kDouble ? x : x.to(torch::kFloat);
  if (groups > 1) {
    auto grouped = xf.sizes().vec();
    if (grouped.back() % groups != 0)
      throw std::invalid_argument("rms_norm: the last dimension (" + std::to_string(grouped.back()) +
                                  ") must divide into " + std::to_string(groups) + " groups");
    grouped.back() = groups;
    grouped.push_back(xf.size(-1) / groups);
    xf = xf.view(grouped);
  }
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  if (groups > 1) normed = normed.view(x.sizes());
  return normed.to(x.scalar_type()) * weight.to(x.scalar_type());
}

namespace {

// rms_norm, its output in out_dtype (x's, or bf16 for a float32 x).
torch::Tensor rms_norm_to(const torch::Tensor& x, const torch::Tensor& weight, double eps, int64_t groups,
                          torch::ScalarType out_dtype) {
  if (x.is_cuda() && groups == 1) {
#ifdef BLA_HAVE_CUDA_KERNELS
    const bool members = members_of(weight, 1) > 0;
    std::string why = "turned off by BLA_KERNELS=0";
    if (ops::model_kernels_enabled()) {
      // An ensemble: one launch for every member, each member's rows with its weight.
      if (members && kernels::rms_norm_members_supported(x, weight, &why))
        return kernels::rms_norm_members_autograd(x, weight, eps, out_dtype);
      if (!members && kernels::rms_norm_supported(x, weight, &why))
        return kernels::rms_norm_autograd(x, weight, eps, out_dtype);
    }
    ops::note_kernel_fallback("rms_norm", why);
#else
    ops::note_kernel_fallback("rms_norm", "bla-train was built without its CUDA kernels");
#endif
  }
  return rms_norm_libtorch(x, per_member(weight, 1, x), eps, groups).to(out_dtype);
}

// Whether a product would cast x to bf16: CUDA bf16 autocast on, x float32 on CUDA.
bool autocast_to_bf16(const torch::Tensor& x) {
  return x.is_cuda() && x.scalar_type() == torch::kFloat && compat::cuda_autocast_enabled() &&
         compat::cuda_autocast_dtype() == torch::kBFloat16;
}

}  // namespace

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, int64_t groups) {
  return rms_norm_to(x, weight, eps, groups, x.scalar_type());
}

torch::Tensor rms_norm_into_products(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return rms_norm_to(x, weight, eps, 1, autocast_to_bf16(x) ? torch::kBFloat16 : x.scalar_type());
}

std::pair<torch::Tensor, torch::Tensor> rms_norm_after_add(const torch::Tensor& x, const torch::Tensor& res,
                                                           const torch::Tensor& weight, double eps,
                                                           bool into_products) {
  const auto out_dtype = into_products && autocast_to_bf16(x) ? torch::kBFloat16 : x.scalar_type();
  if (x.is_cuda()) {
#ifdef BLA_HAVE_CUDA_KERNELS
    std::string why = "turned off by BLA_KERNELS=0";
    if (ops::model_kernels_enabled() && kernels::rms_norm_after_add_supported(x, res, weight, &why))
      return kernels::rms_norm_after_add_autograd(x, res, weight, eps, out_dtype);
    ops::note_kernel_fallback("rms_norm_after_add", why);
#else
    ops::note_kernel_fallback("rms_norm_after_add", "bla-train was built without its CUDA kernels");
#endif
  }
  auto s = x + res;
  return {s, rms_norm_to(s, weight, eps, 1, out_dtype)};
}

std::pair<torch::Tensor, torch::Tensor> RMSNormImpl::after_add(const torch::Tensor& x, const torch::Tensor& res,
                                                               bool to_products) {
  if (!res.defined()) return {x, to_products ? into_products(x) : forward(x)};
  return rms_norm_after_add(x, res, weight_, eps_, to_products);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", torch::ones({dim}));
}

}  // namespace bla::mixers
