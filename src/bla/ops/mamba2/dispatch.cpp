// selective_state_space (mamba2.h): which form runs. On CUDA tensors, the
// kernels (kernels/ssd_*: bla_kernels/ssd.h) where they support the inputs,
// BLA_KERNELS is not 0 and no gradient is needed (evaluation, generation);
// with gradients only if SsdOptions::kernel_backward asks, the gradients then
// from three more kernel passes (backward.h). Everywhere else the chunked
// LibTorch form (chunked.cpp), with one log line on CUDA saying why. Prefill
// from a state (selective_state_space_with_state) always runs the LibTorch
// form.
#include <torch/torch.h>

#include <string>

#include "bla/ops/kernel_switch.h"
#include "bla/ops/mamba2/backward.h"
#include "bla/ops/mamba2/internal.h"
#include "bla/ops/mamba2/mamba2.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/ssd.h"
#endif

namespace bla::ops {

namespace {

#ifdef BLA_HAVE_CUDA_KERNELS
// The kernels' forward pass (bla_kernels/ssd.h) for SsdFunction.
struct KernelPass {
  static at::Tensor run(const at::Tensor& x, const at::Tensor& log_decay, const at::Tensor& key_scale,
                        const at::Tensor& Bm, const at::Tensor& Cm, bool float_output) {
    return kernels::ssd_forward(x, log_decay, key_scale, Bm, Cm, float_output);
  }
};
#endif

}  // namespace

at::Tensor selective_state_space(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& Bm,
                                 const at::Tensor& Cm, const at::Tensor& D, const SsdOptions& opt) {
  mamba2_internal::check_chunk(opt);
  mamba2_internal::check_sequence_inputs(x, dt, A, Bm, Cm, D);
  if (x.is_cuda() && x.size(1) > 0) {
#ifdef BLA_HAVE_CUDA_KERNELS
    const bool needs_grad =
        at::GradMode::is_enabled() && (x.requires_grad() || dt.requires_grad() || A.requires_grad() ||
                                       Bm.requires_grad() || Cm.requires_grad() || (D.defined() && D.requires_grad()));
    std::string why;
    if (!kernels_enabled()) {
      why = "turned off by BLA_KERNELS=0";
    } else if (needs_grad && !opt.kernel_backward) {
      why = "with gradients the LibTorch form is faster than the kernels' three-pass backward";
    } else {
      const auto decay = mamba2_internal::ssd_decay(dt, A);
      const auto log_decay = decay.log_decay.to(at::kFloat), key_scale = decay.key_scale.to(at::kFloat);
      if (kernels::ssd_supported(x, log_decay, key_scale, Bm, Cm, &why)) {
        const auto y = SsdFunction<KernelPass>::apply(x, log_decay, key_scale, Bm, Cm);
        return mamba2_internal::add_skip(y, x, D);
      }
    }
    note_kernel_fallback("ssd (mamba2)", why);
#else
    note_kernel_fallback("ssd (mamba2)", "bla-train was built without its CUDA kernels");
#endif
  }
  return mamba2_internal::selective_state_space_libtorch(x, dt, A, Bm, Cm, D, opt.chunk);
}

}  // namespace bla::ops
