// Device helpers the model kernels (model_*.cu) share: 16- and 8-byte vector loads
// and stores converted to and from float, and a deterministic group sum.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "device_common.cuh"
#include "model_launch.h"

namespace bla::kernels::detail {

// N consecutive elements at p as floats. When they span whole 16-byte words
// (the caller checked p is 16-byte aligned), one 16-byte load per word; else
// 8-byte words where they span those (p then 8-byte aligned).
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
  } else if constexpr ((N * sizeof(T)) % 8 == 0) {
    constexpr int kPerWord = 8 / sizeof(T);
#pragma unroll
    for (int w = 0; w < N / kPerWord; ++w) {
      const uint2 raw = reinterpret_cast<const uint2*>(p)[w];
      T vals[kPerWord];
      memcpy(vals, &raw, 8);
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
  } else if constexpr ((N * sizeof(T)) % 8 == 0) {
    constexpr int kPerWord = 8 / sizeof(T);
#pragma unroll
    for (int w = 0; w < N / kPerWord; ++w) {
      T vals[kPerWord];
#pragma unroll
      for (int j = 0; j < kPerWord; ++j) vals[j] = from_float<T>(in[w * kPerWord + j]);
      uint2 raw;
      memcpy(&raw, vals, 8);
      reinterpret_cast<uint2*>(p)[w] = raw;
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

// Sum of v over a group of `group` consecutive threads of the block (a
// multiple of 32; the block is whole groups), the same value in every thread
// of the group, in a fixed order (deterministic): each warp sums its lanes,
// then every warp of the group sums the group's warp totals. scratch: 32
// floats of shared memory. Every thread of the block must call it (it holds
// __syncthreads when a group spans warps); it may be called again right away.
__device__ __forceinline__ float group_sum(float v, int group, float* scratch) {
  v = warp_sum(v);
  const int warps = group / 32;
  if (warps == 1) return v;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int first = warp / warps * warps;  // the group's first warp
  float total = lane < warps ? scratch[first + lane] : 0.f;
  total = warp_sum(total);
  __syncthreads();  // scratch is free for the next call
  return total;
}

inline bool aligned_16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace bla::kernels::detail
