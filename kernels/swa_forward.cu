// Sliding-window attention forward: the launcher production calls, with one
// tile shape per head dim. The kernels are templates in
// swa_forward_kernels.cuh; the other tile shapes measured, their timings and
// a reference to check them against are in kernels/dev/ (README.md there).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "swa_forward_kernels.cuh"
#include "swa_launch.h"

namespace bla::kernels::detail {

cudaError_t swa_forward_launch(const SwaForwardArgs& a, SwaFamily family, cudaStream_t stream) {
  const int D = a.shape.dim;
  if (D != 64 && D != 128) return cudaErrorInvalidValue;
  if (family == SwaFamily::kTensorCore) {
    if (a.dtype != SwaDtype::kBFloat16) return cudaErrorInvalidValue;
    // The fastest tiles measured on an H100 (docs/performance.md, "Versions
    // that mattered"): 4 warps of one 16-row tile each, key blocks of 64 at
    // D = 64 and of 32 at D = 128 (kernels/dev variants 0 and 2).
    return D == 64 ? launch_forward_tc<64, 4, 1, 64>(a, stream) : launch_forward_tc<128, 4, 1, 32>(a, stream);
  }
  if (a.dtype == SwaDtype::kFloat32)
    return D == 64 ? launch_forward_simt<float, 64>(a, stream) : launch_forward_simt<float, 128>(a, stream);
  return D == 64 ? launch_forward_simt<__nv_bfloat16, 64>(a, stream)
                 : launch_forward_simt<__nv_bfloat16, 128>(a, stream);
}

}  // namespace bla::kernels::detail
