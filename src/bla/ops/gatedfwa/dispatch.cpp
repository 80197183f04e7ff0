// gated_window_attention: which form runs. On CUDA tensors the SWA kernel
// (kernels/swa_*.cu), whose logits scale q_t.k_s + bias_t - bias_s take
// GatedFWA's G = cumsum(g) as the bias, where the kernel supports the inputs
// and BLA_KERNELS is not 0; everywhere else the blocked form (chunked.cpp).
//
// G is summed in float64 and stored as float32 for the kernel, so each G_t is
// within half a float32 ulp of the exact sum and G_t - G_s within one ulp of
// |G_t|: 1.2e-7 |G_t| (about 1e-3 at |G| = 1e4, the total decay of 8,192
// tokens decaying by 1.2 each). The blocked form sums locally and has no such
// term; the CUDA tests bound the difference (tests/cuda/gatedfwa_kernel_test.cpp).
#include <torch/torch.h>

#include <string>

#include "bla/ops/checks.h"
#include "bla/ops/gatedfwa/gatedfwa.h"
#include "bla/ops/gatedfwa/internal.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/swa.h"
#endif

namespace bla::ops {

at::Tensor gated_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& log_gate, const GatedWindowOptions& opt) {
  gatedfwa_internal::check_options(opt);
  gatedfwa_internal::check_sequence_inputs(q, k, v, log_gate);
  if (q.is_cuda() && q.size(1) > 0) {
#ifdef BLA_HAVE_CUDA_KERNELS
    std::string why = "turned off by BLA_KERNELS=0";
    if (kernels_enabled() && kernels::swa_supported(q, k, v, opt.window, &why)) {
      const auto G = log_gate.to(at::kDouble).cumsum(1).to(at::kFloat);  // (B, T, H)
      return kernels::swa_forward_autograd(q, k, v, opt.window, resolve_scale(opt.scale, q.size(3)), G);
    }
    note_kernel_fallback("gated_window_attention", why);
#else
    note_kernel_fallback("gated_window_attention", "bla-train was built without its CUDA kernels");
#endif
  }
  return gatedfwa_internal::blocked_gated_window_attention(q, k, v, log_gate, opt);
}

}  // namespace bla::ops
