// Device building blocks of the BLA chunk kernels: tile loads, the per-row
// modal scale and the masked softmax over slots, beside the block-wide
// matrix products of block_product.cuh. 256 threads per block.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "bla_chunk_launch.h"
#include "block_product.cuh"
#include "device_common.cuh"

namespace bla::kernels::detail {

constexpr int kBlaThreads = kBlockThreads;
constexpr int kBlaWarps = kBlockWarps;

// Zero a rows x cols float tile with row stride ld.
__device__ __forceinline__ void zero_tile(float* tile, int rows, int cols, int ld) {
  for (int idx = threadIdx.x; idx < rows * cols; idx += kBlaThreads) tile[(idx / cols) * ld + idx % cols] = 0.f;
}

// Elements between consecutive tokens of a (B, T, H, D) operand: `row`
// (BlaChunkArgs::q_row ...), or H * D, a contiguous tensor's, where it is 0.
__device__ __forceinline__ size_t token_stride(long long row, const BlaChunkShape& s) {
  return row > 0 ? static_cast<size_t>(row) : static_cast<size_t>(s.heads) * s.dim;
}

// Where token t's row of head h starts in a (B, T, H, D) operand whose
// tokens lie `row` elements apart.
template <int D>
__device__ __forceinline__ size_t token_offset(const BlaChunkShape& s, size_t row, int b, int h, int t) {
  return (static_cast<size_t>(b) * s.seq + t) * row + static_cast<size_t>(h) * D;
}

// The chunk's 64 rows of a (B, T, H, D) operand (tokens `row` elements
// apart) into a float tile of row stride LD (D + 4 unless given); rows past
// the sequence are zero. A thread issues all its loads before converting any, so they are in
// flight together.
template <typename T, int D, int LD = D + 4>
__device__ __forceinline__ void load_rows(float* tile, const T* x, size_t row, const BlaChunkShape& s, int b, int h,
                                          int first) {
  constexpr int kPer = kBlaChunk * D / kBlaThreads, kRowsPerStep = kBlaThreads / D;
  const int r0 = threadIdx.x / D, c = threadIdx.x % D;  // the thread's rows r0 + u kRowsPerStep, column c
  const T* p = x + token_offset<D>(s, row, b, h, first + r0) + c;
  const size_t step = kRowsPerStep * row;
  T raw[kPer];
#pragma unroll
  for (int u = 0; u < kPer; ++u) raw[u] = first + r0 + u * kRowsPerStep < s.seq ? p[u * step] : from_float<T>(0.f);
#pragma unroll
  for (int u = 0; u < kPer; ++u) tile[(r0 + u * kRowsPerStep) * LD + c] = to_float(raw[u]);
}

// Ask L2 for every 128-byte line of [p, p + bytes), spread over the block:
// issued at a kernel's start for operands it reads later, so their loads
// find them in L2 instead of waiting on DRAM.
__device__ __forceinline__ void prefetch_span(const void* p, size_t bytes) {
  const char* base = static_cast<const char*>(p);
  for (size_t at = static_cast<size_t>(threadIdx.x) * 128; at < bytes; at += static_cast<size_t>(kBlaThreads) * 128)
    prefetch_l2(base + at);
}

// The same for the chunk's rows of a (B, T, H, D) operand (tokens `row` elements apart).
template <typename T, int D>
__device__ __forceinline__ void prefetch_rows(const T* x, size_t row, const BlaChunkShape& s, int b, int h,
                                              int first) {
  constexpr int kLines = (D * static_cast<int>(sizeof(T)) + 127) / 128;
  for (int idx = threadIdx.x; idx < kBlaChunk * kLines; idx += kBlaThreads) {
    const int t = first + idx / kLines;
    if (t >= s.seq) continue;
    const char* line = reinterpret_cast<const char*>(x + token_offset<D>(s, row, b, h, t));
    prefetch_l2(line + (idx % kLines) * 128);
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

// Shared-memory row strides: four floats of padding keep the tensor cores'
// 32-byte alignment and multiple-of-4 leading dimensions, and spread column
// walks (transposed operands) over 8 banks.
template <int D, int NP>
struct BlaLayout {
  static constexpr int kLdD = D + 4;
  static constexpr int kLdC = kBlaChunk + 4;
  static constexpr int kLdN = NP + 4;
  static constexpr int kTileD = kBlaChunk * kLdD;
  static constexpr int kTileC = kBlaChunk * kLdC;
  static constexpr int kTileN = kBlaChunk * kLdN;
  static constexpr int kScratch = kBlaWarps * 256;  // TensorCoreProduct's per-warp 16 x 16
};

// Blocks per SM the chunk kernels are compiled for: two at D = 64 with 32 or
// 64 slots (their shared memory allows two; this caps registers at 128),
// else one.
template <int D, int NP>
constexpr int kChunkBlocksPerSm = D == 64 && NP <= 64 ? 2 : 1;

// Whether `bytes` of dynamic shared memory a block let kChunkBlocksPerSm
// blocks share an SM (sm_90: 228 KB an SM, 227 KB a block at most, 1 KB of
// each block's kept by the driver).
template <int D, int NP>
constexpr bool fits_blocks_per_sm(size_t bytes) {
  return bytes <= 232448 && kChunkBlocksPerSm<D, NP> * (bytes + 1024) <= 233472;
}

// One block of 256 threads per (chunk, head, batch).
inline dim3 chunk_grid(const BlaChunkShape& s) { return dim3(s.chunks, s.heads, s.batch); }

// kernel<<<grid, 256, bytes, stream>>>(args), after raising the kernel's
// dynamic shared-memory limit to `bytes`.
template <typename Args>
cudaError_t launch_blocks(void (*kernel)(Args), size_t bytes, dim3 grid, cudaStream_t stream, const Args& args) {
  const cudaError_t err =
      cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(bytes));
  if (err != cudaSuccess) return err;
  DEV_LAUNCH_ON(grid, kBlaThreads, bytes, stream, kernel)(args);
  return cudaGetLastError();
}

// The compiled (head dim, padded slots) pairs: calls f(Dim{}, Slots{}) with
// std::integral_constant arguments, or returns cudaErrorInvalidValue.
// Head dims 64 and 128 with 32, 64 or 128 padded slots: all six fit one
// block per SM (the largest, the backward's pass 1 at D = NP = 128, needs
// 194,560 B).
template <typename F>
cudaError_t for_compiled_shape(int dim, int padded, F&& f) {
  using I64 = std::integral_constant<int, 64>;
  using I128 = std::integral_constant<int, 128>;
  using I32 = std::integral_constant<int, 32>;
  if (dim == 64 && padded == 32) return f(I64{}, I32{});
  if (dim == 64 && padded == 64) return f(I64{}, I64{});
  if (dim == 64 && padded == 128) return f(I64{}, I128{});
  if (dim == 128 && padded == 32) return f(I128{}, I32{});
  if (dim == 128 && padded == 64) return f(I128{}, I64{});
  if (dim == 128 && padded == 128) return f(I128{}, I128{});
  return cudaErrorInvalidValue;
}

// Offset of the modal slots (NP x D) before chunk c of (b, h).
__device__ __forceinline__ size_t modal_offset(const BlaChunkShape& s, int b, int h, int c) {
  return ((static_cast<size_t>(b) * s.heads + h) * s.chunks + c) * static_cast<size_t>(s.padded) * s.dim;
}

// Offset of chunk c's (64 x NP) score-shaped tile (probabilities, score
// grads) in a (B, H, nc, 64, NP) buffer.
__device__ __forceinline__ size_t score_offset(const BlaChunkShape& s, int b, int h, int c) {
  return ((static_cast<size_t>(b) * s.heads + h) * s.chunks + c) * static_cast<size_t>(kBlaChunk) * s.padded;
}

// A (Rows x Cols) tile of row stride ld to or from a dense (Rows x Cols)
// block; a thread issues all its loads before its first store.
template <int Rows, int Cols>
__device__ __forceinline__ void tile_to_dense(float* dense, const float* tile, int ld) {
  for (int idx = threadIdx.x; idx < Rows * Cols; idx += kBlaThreads) dense[idx] = tile[(idx / Cols) * ld + idx % Cols];
}
template <int Rows, int Cols>
__device__ __forceinline__ void dense_to_tile(float* tile, int ld, const float* dense) {
  constexpr int kPer = Rows * Cols / kBlaThreads;
  float raw[kPer];
#pragma unroll
  for (int u = 0; u < kPer; ++u) raw[u] = dense[threadIdx.x + u * kBlaThreads];
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const int idx = threadIdx.x + u * kBlaThreads;
    tile[(idx / Cols) * ld + idx % Cols] = raw[u];
  }
}

// A chunk's modal slots (NP x D) as a product operand: staged in shared
// memory (row stride LD, D + 4 unless given) where the block has room for them (D = 64 with
// 32 or 64 slots), else read from global memory (row stride D).
struct ModalOperand {
  const float* data;
  int ld;
};

template <int D, int NP>
constexpr bool kStageModal = D == 64 && NP <= 64;

// Floats a kernel sets aside for one staged modal tile (0 when not staged).
template <int D, int NP>
constexpr int kModalTileFloats = kStageModal<D, NP> ? NP * (D + 4) : 0;

// The operand for `modal`, staged into `tile` where kStageModal (the
// caller syncs before use).
template <int D, int NP, int LD = D + 4>
__device__ __forceinline__ ModalOperand modal_operand(float* tile, const float* modal) {
  if constexpr (kStageModal<D, NP>) {
    dense_to_tile<NP, D>(tile, LD, modal);
    return {tile, LD};
  } else {
    return {modal, D};
  }
}

// Pass 1 of the chunked form on one chunk (bla_chunk_launch.h): queries in
// qs, keys in ks (row stride D + 4), lag zeroed, all synced. Leaves the
// probabilities in zs, synced; lag and ys are free again, qs and ks untouched.
template <typename T, int D, int NP>
__device__ __forceinline__ void chunk_probabilities(const BlaChunkShape& s, const BlaChunkTablesView& tb,
                                                    ModalOperand modal_keys, const float* qs, const float* ks,
                                                    float* lag, float* zs, float* ys, float* scratch, int first) {
  using L = BlaLayout<D, NP>;
  constexpr int C = kBlaChunk;
  {
    Product<T, C, C> acc(scratch);  // lag[i, i - s] = <q_i, k_s> for s <= i
    acc.zero();
    acc.template add_product<D, kFromBf16, kFromBf16>(qs, L::kLdD, 1, ks, 1, L::kLdD);
    acc.for_each([&](int i, int j, float x) {
      if (j <= i) lag[i * L::kLdC + (i - j)] = x;
    });
  }
  __syncthreads();
  Product<T, C, NP> score(scratch);  // intra = lag H; inter = (Bn (U_K q_i)) R^T
  score.zero();
  score.template add_product<C, kRound, kTable>(lag, L::kLdC, 1, tb.h, NP, 1);
  {
    Product<T, C, NP> y(scratch);
    y.zero();
    y.template add_product<D, kFromBf16, kRound>(qs, L::kLdD, 1, modal_keys.data, 1, modal_keys.ld);
    y.store(ys, L::kLdN);
  }
  __syncthreads();
  modal_rows<NP>(ys, L::kLdN, tb.alpha, tb.beta, tb.partner);
  __syncthreads();
  score.template add_product<NP, kRound, kTable>(ys, L::kLdN, 1, tb.basis_t, NP, 1);
  score.scale(s.scale);
  score.store(zs, L::kLdN);
  __syncthreads();
  softmax_rows<NP>(zs, L::kLdN, s, first);
  __syncthreads();
}

// Pass 1 from the inputs: the chunk's queries into qs and keys into ks, then
// chunk_probabilities (the probabilities in zs, synced).
template <typename T, int D, int NP>
__device__ __forceinline__ void load_and_score(const BlaChunkArgs& args, ModalOperand modal_keys, float* qs,
                                               float* ks, float* lag, float* zs, float* ys, float* scratch, int b,
                                               int h, int first) {
  load_rows<T, D>(qs, static_cast<const T*>(args.q), token_stride(args.q_row, args.shape), args.shape, b, h, first);
  load_rows<T, D>(ks, static_cast<const T*>(args.k), token_stride(args.k_row, args.shape), args.shape, b, h, first);
  zero_tile(lag, kBlaChunk, kBlaChunk, BlaLayout<D, NP>::kLdC);
  __syncthreads();
  chunk_probabilities<T, D, NP>(args.shape, args.tables, modal_keys, qs, ks, lag, zs, ys, scratch, first);
}

// Pass 2's weights from the probabilities in zs (lag zeroed, all synced):
// ys[i] <- Bn^T (R^T p_i) (the modal slots' weights) and lag[i, s] <-
// <p_i, h(i - s)> (the chunk's tokens' weights). Synced on return.
template <typename T, int D, int NP>
__device__ __forceinline__ void chunk_output_weights(const BlaChunkTablesView& tb, const float* zs, float* ys,
                                                     float* lag, float* scratch) {
  using L = BlaLayout<D, NP>;
  constexpr int C = kBlaChunk;
  {
    Product<T, C, NP> x(scratch);
    x.zero();
    x.template add_product<NP, kRound, kTable>(zs, L::kLdN, 1, tb.basis, NP, 1);
    x.store(ys, L::kLdN);
    Product<T, C, C> w(scratch);
    w.zero();
    w.template add_product<NP, kRound, kTable>(zs, L::kLdN, 1, tb.h_t, C, 1);
    w.for_each([&](int i, int tau, float value) {
      if (tau <= i) lag[i * L::kLdC + (i - tau)] = value;
    });
  }
  __syncthreads();
  modal_rows<NP>(ys, L::kLdN, tb.alpha, tb.beta_t, tb.partner);
  __syncthreads();
}

}  // namespace bla::kernels::detail
