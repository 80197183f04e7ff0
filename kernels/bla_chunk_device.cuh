// Device building blocks of the BLA chunk kernels: a block-wide SIMT matrix
// product over float32 operands in shared or global memory (any strides, so
// transposes cost nothing), tile loads, the per-row modal scale and the
// masked softmax over slots. 256 threads per block; the product's thread
// (ty, tx) = (tid / 16, tid % 16) owns rows ty + 16 i and columns tx + 16 j.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "bla_chunk_launch.h"
#include "device_common.cuh"

namespace bla::kernels::detail {

constexpr int kBlaThreads = 256;
constexpr int kBlaWarps = kBlaThreads / 32;

// Accumulators of an M x N product tile, spread over the block.
template <int M, int N>
struct Acc {
  static_assert(M % 16 == 0 && N % 16 == 0, "tiles are multiples of 16");
  static constexpr int kRows = M / 16;
  static constexpr int kCols = N / 16;
  float v[kRows][kCols];

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < kRows; ++i)
#pragma unroll
      for (int j = 0; j < kCols; ++j) v[i][j] = 0.f;
  }

  // acc += A B, A (M x K) with element (m, k) at a[m * a_row + k * a_col],
  // B (K x N) with element (k, n) at b[k * b_row + n * b_col].
  template <int K>
  __device__ __forceinline__ void add_product(const float* a, int a_row, int a_col, const float* b, int b_row,
                                              int b_col) {
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll 4
    for (int k = 0; k < K; ++k) {
      float av[kRows], bv[kCols];
#pragma unroll
      for (int i = 0; i < kRows; ++i) av[i] = a[(ty + 16 * i) * a_row + k * a_col];
#pragma unroll
      for (int j = 0; j < kCols; ++j) bv[j] = b[k * b_row + (tx + 16 * j) * b_col];
#pragma unroll
      for (int i = 0; i < kRows; ++i)
#pragma unroll
        for (int j = 0; j < kCols; ++j) v[i][j] = fmaf(av[i], bv[j], v[i][j]);
    }
  }

  // f(row, col, value) for every element this thread owns.
  template <typename F>
  __device__ __forceinline__ void for_each(F&& f) const {
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll
    for (int i = 0; i < kRows; ++i)
#pragma unroll
      for (int j = 0; j < kCols; ++j) f(ty + 16 * i, tx + 16 * j, v[i][j]);
  }
};

// Zero a rows x cols float tile with row stride ld.
__device__ __forceinline__ void zero_tile(float* tile, int rows, int cols, int ld) {
  for (int idx = threadIdx.x; idx < rows * cols; idx += kBlaThreads) tile[(idx / cols) * ld + idx % cols] = 0.f;
}

// The chunk's 64 rows of a (B, T, H, D) tensor into a float tile of row
// stride D + 1; rows past the sequence are zero.
template <typename T, int D>
__device__ __forceinline__ void load_rows(float* tile, const T* x, const BlaChunkShape& s, int b, int h, int first) {
  for (int idx = threadIdx.x; idx < kBlaChunk * D; idx += kBlaThreads) {
    const int r = idx / D, c = idx % D, t = first + r;
    float value = 0.f;
    if (t < s.seq) value = to_float(x[((static_cast<size_t>(b) * s.seq + t) * s.heads + h) * D + c]);
    tile[r * (D + 1) + c] = value;
  }
}

// Store (row, col, value) of a product into a (B, T, H, D) tensor, rows past
// the sequence dropped.
template <typename T, int D>
struct RowStore {
  T* x;
  const BlaChunkShape* s;
  int b, h, first;
  __device__ __forceinline__ void operator()(int r, int c, float value) const {
    const int t = first + r;
    if (t < s->seq) x[((static_cast<size_t>(b) * s->seq + t) * s->heads + h) * D + c] = from_float<T>(value);
  }
};

// In place on each row i of a (64 x NP) tile: y <- Bn y (use beta) or
// Bn^T y (use beta_t), Bn = B^(i+1), through the (C, NP) tables.
template <int NP>
__device__ __forceinline__ void modal_rows(float* tile, int ld, const float* alpha, const float* beta,
                                           const int* partner) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = warp; i < kBlaChunk; i += kBlaWarps) {
    float* row = tile + i * ld;
    float out[NP / 32];
#pragma unroll
    for (int u = 0; u < NP / 32; ++u) {
      const int m = lane + 32 * u;
      out[u] = alpha[i * NP + m] * row[m] + beta[i * NP + m] * row[partner[m]];
    }
    __syncwarp();
#pragma unroll
    for (int u = 0; u < NP / 32; ++u) row[lane + 32 * u] = out[u];
    __syncwarp();
  }
}

// Slot j is visible at global token t when j < N and its age j W / N <= t.
__device__ __forceinline__ bool slot_visible(int j, int t, const BlaChunkShape& s) {
  return j < s.slots && static_cast<long long>(j) * s.window <= static_cast<long long>(t) * s.slots;
}

// In place on each row of a (64 x NP) tile of scores: the softmax over the
// visible slots (others get 0). Every row has slot 0 visible.
template <int NP>
__device__ __forceinline__ void softmax_rows(float* tile, int ld, const BlaChunkShape& s, int first) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = warp; i < kBlaChunk; i += kBlaWarps) {
    float* row = tile + i * ld;
    const int t = first + i;
    float z[NP / 32];
    bool visible[NP / 32];
    float high = -INFINITY;
#pragma unroll
    for (int u = 0; u < NP / 32; ++u) {
      const int j = lane + 32 * u;
      visible[u] = slot_visible(j, t, s);
      z[u] = row[j];
      if (visible[u]) high = fmaxf(high, z[u]);
    }
    high = warp_max(high);
    float total = 0.f;
#pragma unroll
    for (int u = 0; u < NP / 32; ++u) {
      z[u] = visible[u] ? expf(z[u] - high) : 0.f;
      total += z[u];
    }
    const float inverse = 1.f / warp_sum(total);
#pragma unroll
    for (int u = 0; u < NP / 32; ++u) row[lane + 32 * u] = z[u] * inverse;
  }
}

// Shared-memory row strides: one float of padding keeps column walks
// (transposed operands) free of bank conflicts.
template <int D, int NP>
struct BlaLayout {
  static constexpr int kLdD = D + 1;
  static constexpr int kLdC = kBlaChunk + 1;
  static constexpr int kLdN = NP + 1;
  static constexpr int kTileD = kBlaChunk * kLdD;
  static constexpr int kTileC = kBlaChunk * kLdC;
  static constexpr int kTileN = kBlaChunk * kLdN;
};

// Offset of the modal slots (NP x D) before chunk c of (b, h).
__device__ __forceinline__ size_t modal_offset(const BlaChunkShape& s, int b, int h, int c) {
  return ((static_cast<size_t>(b) * s.heads + h) * s.chunks + c) * static_cast<size_t>(s.padded) * s.dim;
}

}  // namespace bla::kernels::detail
