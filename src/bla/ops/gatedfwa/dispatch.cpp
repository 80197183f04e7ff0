// gated_window_attention: which form runs. On CUDA tensors the SWA kernel
// (kernels/swa_*.cu), whose logits scale q_t.k_s + bias_t - bias_s take
// GatedFWA's G = cumsum(g) as the bias, where the kernel supports the inputs
// and BLA_KERNELS is not 0; everywhere else the blocked form (chunked.cpp).
//
// The kernel runs over segments of max(2048, 4 W) queries, each with the
// W - 1 keys before it and G rebased to its first key (segmented.cpp), so
// neither |G| in float32 nor the rounding summed into the gate's gradient
// grows past a segment's; a sequence that fits one segment is one call, and
// longer ones compute (W - 1) / segment more. The CUDA tests bound what is
// left against the blocked form in float64 (tests/cuda/gatedfwa_kernel_test.cpp).
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "bla/ops/checks.h"
#include "bla/ops/gatedfwa/gatedfwa.h"
#include "bla/ops/gatedfwa/internal.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/swa.h"
#endif

namespace bla::ops {

namespace {

// Queries per segment of the kernel path (segmented.cpp): the W - 1 keys each
// segment repeats cost at most a quarter more.
[[maybe_unused]] int64_t kernel_segment(int64_t window) { return std::max<int64_t>(2048, 4 * window); }

}  // namespace

at::Tensor gated_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& log_gate, const GatedWindowOptions& opt) {
  gatedfwa_internal::check_options(opt);
  gatedfwa_internal::check_sequence_inputs(q, k, v, log_gate);
  if (q.is_cuda() && q.size(1) > 0) {
#ifdef BLA_HAVE_CUDA_KERNELS
    std::string why = "turned off by BLA_KERNELS=0";
    if (kernels_enabled() && kernels::swa_supported(q, k, v, opt.window, &why)) {
      const double scale = resolve_scale(opt.scale, q.size(3));
      const int64_t window = opt.window;
      return gatedfwa_internal::segmented_gated_window_attention(
          q, k, v, log_gate, window, kernel_segment(window),
          [&](const at::Tensor& qs, const at::Tensor& ks, const at::Tensor& vs, const at::Tensor& bias) {
            return kernels::swa_forward_autograd(qs, ks, vs, window, scale, bias);
          });
    }
    note_kernel_fallback("gated_window_attention", why);
#else
    note_kernel_fallback("gated_window_attention", "bla-train was built without its CUDA kernels");
#endif
  }
  return gatedfwa_internal::blocked_gated_window_attention(q, k, v, log_gate, opt);
}

}  // namespace bla::ops
