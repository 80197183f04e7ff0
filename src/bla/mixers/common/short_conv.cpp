#include "bla/mixers/common/short_conv.h"

#include "bla/mixers/common/members.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/model.h"
#endif

#include <torch/torch.h>

#include <cmath>
#include <string>

namespace bla::mixers {

torch::Tensor causal_depthwise_conv(const torch::Tensor& window, int64_t dim, int64_t length,
                                    const torch::Tensor& weight, const torch::Tensor& bias) {
  const int64_t K = weight.size(-1);
  auto out = per_member(bias, 1, window).to(window.scalar_type()).expand_as(window.narrow(dim, 0, length));
  for (int64_t k = 0; k < K; ++k) {
    out = out + window.narrow(dim, k, length) * per_member(weight.select(-1, k), 1, window).to(window.scalar_type());
  }
  return out;
}

ShortConvImpl::ShortConvImpl(int64_t channels, int64_t kernel) : channels_(channels), kernel_(kernel) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(kernel));
  weight_ = register_parameter("weight", torch::empty({channels, kernel}).uniform_(-bound, bound));
  bias_ = register_parameter("bias", torch::empty({channels}).uniform_(-bound, bound));
}

torch::Tensor short_conv(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (x.is_cuda()) {
#ifdef BLA_HAVE_CUDA_KERNELS
    std::string why = "turned off by BLA_KERNELS=0";
    if (ops::model_kernels_enabled() && kernels::short_conv_supported(x, weight, bias, &why))
      return kernels::short_conv_autograd(x, weight, bias);
    ops::note_kernel_fallback("short_conv", why);
#else
    ops::note_kernel_fallback("short_conv", "bla-train was built without its CUDA kernels");
#endif
  }
  auto padded = at::constant_pad_nd(x, {0, 0, weight.size(-1) - 1, 0}, 0);  // K-1 zeros before the first token
  return causal_depthwise_conv(padded, 1, x.size(1), weight, bias);
}

torch::Tensor ShortConvImpl::forward(const torch::Tensor& x) { return short_conv(x, weight_, bias_); }

torch::Tensor ShortConvImpl::initial_cache(int64_t batch, const torch::TensorOptions& options) const {
  return torch::zeros({batch, kernel_ - 1, channels_}, options);
}

torch::Tensor ShortConvImpl::step(const torch::Tensor& x, torch::Tensor& cache) {
  auto window = torch::cat({cache.to(x.scalar_type()), x.unsqueeze(1)}, 1);  // (B, K, C)
  cache = window.narrow(1, 1, kernel_ - 1);
  return causal_depthwise_conv(window, 1, 1, weight_, bias_).squeeze(1);
}

}  // namespace bla::mixers
