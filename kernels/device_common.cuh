// Device helpers every kernel here uses: element conversion and warp
// reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

// Dynamic shared memory and kernel launches through macros, so that the CPU
// emulation of the development harnesses (dev/cpu_emulation.h) can stand in
// for both.
#ifndef DEV_EXTERN_SHARED
#define DEV_EXTERN_SHARED(type, name) extern __shared__ __align__(128) type name[]
#define DEV_EXTERN_SHARED_ALIGNED(type, name, bytes) extern __shared__ __align__(bytes) type name[]
#endif
#ifndef DEV_LAUNCH
#define DEV_LAUNCH(grid, block, smem, ...) __VA_ARGS__<<<grid, block, smem>>>
#define DEV_LAUNCH_ON(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#endif

namespace bla::kernels::detail {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// Ask L2 for the 128-byte line holding p (nothing under the CPU emulation).
__device__ __forceinline__ void prefetch_l2(const void* p) {
#ifndef BLA_CPU_EMULATION
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#else
  (void)p;
#endif
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
  return x;
}

}  // namespace bla::kernels::detail
