// Device helpers the model kernels (model_*.cu) share: 16-byte vector loads
// and stores converted to and from float, and a deterministic block sum.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "device_common.cuh"
#include "model_launch.h"

namespace bla::kernels::detail {

// N consecutive elements at p as floats. When they span whole 16-byte words
// (the caller checked p is 16-byte aligned), one 16-byte load per word.
template <typename T, int N>
__device__ __forceinline__ void load_floats(const T* __restrict__ p, float (&out)[N]) {
  if constexpr ((N * sizeof(T)) % 16 == 0) {
    constexpr int kPerWord = 16 / sizeof(T);
#pragma unroll
    for (int w = 0; w < N / kPerWord; ++w) {
      const uint4 raw = reinterpret_cast<const uint4*>(p)[w];
      T vals[kPerWord];
      memcpy(vals, &raw, 16);
#pragma unroll
      for (int j = 0; j < kPerWord; ++j) out[w * kPerWord + j] = to_float(vals[j]);
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) out[j] = to_float(p[j]);
  }
}

template <typename T, int N>
__device__ __forceinline__ void store_floats(T* __restrict__ p, const float (&in)[N]) {
  if constexpr ((N * sizeof(T)) % 16 == 0) {
    constexpr int kPerWord = 16 / sizeof(T);
#pragma unroll
    for (int w = 0; w < N / kPerWord; ++w) {
      T vals[kPerWord];
#pragma unroll
      for (int j = 0; j < kPerWord; ++j) vals[j] = from_float<T>(in[w * kPerWord + j]);
      uint4 raw;
      memcpy(&raw, vals, 16);
      reinterpret_cast<uint4*>(p)[w] = raw;
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) p[j] = from_float<T>(in[j]);
  }
}

// x rounded to T and back (the reference's .to(dtype) between float32 ops).
template <typename T>
__device__ __forceinline__ float round_to(float x) {
  return to_float(from_float<T>(x));
}

// Sum of v over the block, the same value in every thread, in a fixed order
// (deterministic). scratch: 32 floats of shared memory. Every thread of the
// block must call it; it may be called again right away.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  const int warps = (blockDim.x + 31) / 32;
  if (warps == 1) return v;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = lane < warps ? scratch[lane] : 0.f;
  total = warp_sum(total);
  __syncthreads();  // scratch is free for the next call
  return total;
}

inline bool aligned_16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace bla::kernels::detail
