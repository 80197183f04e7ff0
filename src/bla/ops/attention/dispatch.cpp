// sliding_window_attention: which form runs. On CUDA tensors the SWA kernel
// (kernels/swa_*.cu) where it supports the inputs and BLA_KERNELS is not 0,
// except for full causal attention without a bias, where SDPA (cuDNN / flash)
// beats the kernel's window = T case (docs/performance.md); everywhere else
// the parallel form (parallel.cpp).
#include <torch/torch.h>

#include <string>

#include "bla/ops/attention/attention.h"
#include "bla/ops/attention/internal.h"
#include "bla/ops/checks.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/swa.h"
#endif

namespace bla::ops {

at::Tensor sliding_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const WindowOptions& opt, const at::Tensor& bias) {
  attention_internal::check_inputs(q, k, v, opt, bias);
  if (q.is_cuda() && !attention_internal::uses_sdpa(q, opt, bias)) {
#ifdef BLA_HAVE_CUDA_KERNELS
    std::string why = "turned off by BLA_KERNELS=0";
    if (kernels_enabled() && kernels::swa_supported(q, k, v, opt.window, &why)) {
      return kernels::swa_forward_autograd(q, k, v, opt.window, resolve_scale(opt.scale, q.size(3)), bias);
    }
    note_kernel_fallback("sliding_window_attention", why);
#else
    note_kernel_fallback("sliding_window_attention", "bla-train was built without its CUDA kernels");
#endif
  }
  return attention_internal::parallel_attention(q, k, v, opt, bias);
}

}  // namespace bla::ops
