// Sliding-window attention backward: the launcher production calls, with one
// tile shape per head dim. The kernels are templates in
// swa_backward_kernels.cuh; the other tile shapes measured, their timings and
// a reference to check them against are in kernels/dev/ (README.md there).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "swa_backward_kernels.cuh"
#include "swa_launch.h"

namespace bla::kernels::detail {

cudaError_t swa_backward_launch(const SwaBackwardArgs& a, SwaFamily family, cudaStream_t stream) {
  const int D = a.shape.dim;
  if (D != 64 && D != 128) return cudaErrorInvalidValue;
  if (family == SwaFamily::kTensorCore) {
    if (a.dtype != SwaDtype::kBFloat16) return cudaErrorInvalidValue;
    // The fastest tiles measured on an H100 (docs/performance.md, "Versions
    // that mattered"): both passes 4 warps of one 16-row tile each over
    // blocks of 64 at D = 64, the dQ pass capped at 3 blocks per SM
    // (kernels/dev variant 4); blocks of 32 at D = 128 (variant 0).
    return D == 64 ? launch_backward_tc<64, 4, 1, 64, 4, 1, 64, 3>(a, stream)
                   : launch_backward_tc<128, 4, 1, 32, 4, 1, 32>(a, stream);
  }
  if (a.dtype == SwaDtype::kFloat32)
    return D == 64 ? launch_backward_simt<float, 64>(a, stream) : launch_backward_simt<float, 128>(a, stream);
  return D == 64 ? launch_backward_simt<__nv_bfloat16, 64>(a, stream)
                 : launch_backward_simt<__nv_bfloat16, 128>(a, stream);
}

}  // namespace bla::kernels::detail
