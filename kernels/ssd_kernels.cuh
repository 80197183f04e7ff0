// The SSD recurrence's kernels (bla_kernels/ssd.h states the map): chunks of
// CHUNK tokens (64, 128 or 256) on the tensor cores, in tiles of 64 token
// rows, by three kernels: each chunk's state (ssd_chunk_state), a scan of
// the states over the chunks (ssd_state_scan), each chunk's outputs
// (ssd_chunk_output). WMMA operands are tf32 for float inputs and bf16 for
// bf16 inputs, accumulation in float. The development harness
// (dev/ssd_chunk_dev.cu) holds them to a float64 token loop beside its
// simpler versions (dev/README_ssd.md).
//
// Time-major contiguous layout: x and y (B, T, H, P); Bm, Cm (B, T, G, N),
// head h reading group h / (H / G); log_decay and key_scale (B, T, H) float.
// Within a chunk the log decays are summed in float from its first token
// (Acum); every exponent is "later minus earlier", clamped at 0 so a rounding
// can never make a weight exceed 1. Tokens past the sequence are padding
// with decay 1 and no input.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstddef>
#include <type_traits>

#include "device_common.cuh"

namespace bla::kernels::ssd {

using detail::from_float;
using detail::to_float;

constexpr int kThreads = 256;  // every chunk kernel
constexpr int kWarps = kThreads / 32;

struct SsdDims {
  int batch, seq, heads, head_dim, groups, d_state;
  int chunk;    // tokens per chunk, as run
  int nchunks;  // ceil(seq / chunk)
};

__device__ __forceinline__ size_t x_offset(const SsdDims& s, int b, int t, int h) {
  return ((static_cast<size_t>(b) * s.seq + t) * s.heads + h) * s.head_dim;
}
__device__ __forceinline__ size_t dt_offset(const SsdDims& s, int b, int t, int h) {
  return (static_cast<size_t>(b) * s.seq + t) * s.heads + h;
}
// Row of head h's group in a (B, T, G, N) tensor.
__device__ __forceinline__ size_t bc_offset(const SsdDims& s, int b, int t, int h) {
  return ((static_cast<size_t>(b) * s.seq + t) * s.groups + h / (s.heads / s.groups)) * s.d_state;
}
__device__ __forceinline__ size_t state_offset(const SsdDims& s, int b, int h) {
  return (static_cast<size_t>(b) * s.heads + h) * s.d_state * s.head_dim;
}
// Chunk c's (N, P) matrix in a (B, H, nchunks, N, P) workspace.
__device__ __forceinline__ size_t chunk_state_offset(const SsdDims& s, int b, int h, int c) {
  return ((static_cast<size_t>(b) * s.heads + h) * s.nchunks + c) * s.d_state * s.head_dim;
}
__device__ __forceinline__ size_t total_offset(const SsdDims& s, int b, int h, int c) {
  return (static_cast<size_t>(b) * s.heads + h) * s.nchunks + c;
}

// exp(later - earlier) for cumulative log decays: <= 1 by construction.
__device__ __forceinline__ float decay_between(float later, float earlier) { return expf(fminf(later - earlier, 0.f)); }

// One pass of the recurrence h_t = exp(l_t) h_{t-1} + s_t B_t x_t^T,
// y_t = C_t^T h_t + D x_t, with l = log_decay and s = key_scale (1 where
// null). Inputs T, outputs Out (T, or float for gradient passes).
template <typename T, typename Out = T>
struct SsdArgs {
  const T* x;              // (B, T, H, P)
  const float* log_decay;  // (B, T, H), <= 0
  const float* key_scale;  // (B, T, H) or null
  const T* Bm;             // (B, T, G, N)
  const T* Cm;             // (B, T, G, N)
  const float* D;          // (H) or null
  const float* h0;         // (B, H, N, P) or null
  Out* y;                  // (B, T, H, P)
  float* final_state;      // (B, H, N, P) or null
  float* states;           // (B, H, nchunks, N, P): chunk states, then the states entering each chunk
  float* totals;           // (B, H, nchunks): each chunk's summed log decay
  SsdDims s;
};

// The scan over chunks, block (element tile, head, batch), one thread per
// state element: states[c] <- the state entering chunk c (h0 or 0 for c = 0),
// final_state <- the state after the last chunk. Each thread reads the chunk
// states and totals kScanAhead chunks ahead of the one it writes, so that it
// keeps that many loads in flight (run 1 of docs/data/kernel_dev read one
// chunk at a time: 1.19 ms at B=4 T=8192 H=16 N=P=64, chunk 64, about 225
// GB/s). h0 and final_state may be null.
constexpr int kScanAhead = 4;

__global__ void __launch_bounds__(kThreads)
    ssd_state_scan(float* states, const float* totals, const float* h0, float* final_state, SsdDims s) {
  const int NP = s.d_state * s.head_dim, nc = s.nchunks;
  const int e = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, b = blockIdx.z;
  if (e >= NP) return;
  float run = h0 != nullptr ? h0[state_offset(s, b, h) + e] : 0.f;
  float* col = states + chunk_state_offset(s, b, h, 0) + e;
  const float* total = totals + total_offset(s, b, h, 0);
  float add[kScanAhead], log_decay[kScanAhead];
#pragma unroll
  for (int u = 0; u < kScanAhead; ++u) {
    add[u] = u < nc ? col[static_cast<size_t>(u) * NP] : 0.f;
    log_decay[u] = u < nc ? total[u] : 0.f;
  }
  for (int c0 = 0; c0 < nc; c0 += kScanAhead) {
#pragma unroll
    for (int u = 0; u < kScanAhead; ++u) {
      const int c = c0 + u;
      if (c < nc) {
        const float this_add = add[u], decay = expf(log_decay[u]);
        const int next = c + kScanAhead;
        if (next < nc) {
          add[u] = col[static_cast<size_t>(next) * NP];
          log_decay[u] = total[next];
        }
        col[static_cast<size_t>(c) * NP] = run;
        run = fmaf(decay, run, this_add);
      }
    }
  }
  if (final_state != nullptr) final_state[state_offset(s, b, h) + e] = run;
}

// ---------------------------------------------------------------------------
// Tensor-core helpers (WMMA 16x16 tiles, 8 warps).

namespace wmma = nvcuda::wmma;
constexpr int kTcChunk = 64;

// The operand type the tensor cores read from shared memory for input type
// T: float (rounded to tf32 as fragments load; m16n16k8) or bf16 (m16n16k16).
template <typename T>
struct TcOperand;
template <>
struct TcOperand<float> {
  using Op = float;
  using Precision = wmma::precision::tf32;
  static constexpr int kK = 8;
  static constexpr int kPad = 4;  // row padding: keeps 16-byte leading dims, spreads banks
  __device__ __forceinline__ static Op make(float v) { return v; }
  template <typename Fragment>
  __device__ __forceinline__ static void round(Fragment& f) {
#pragma unroll
    for (int e = 0; e < f.num_elements; ++e) f.x[e] = wmma::__float_to_tf32(f.x[e]);
  }
};
template <>
struct TcOperand<__nv_bfloat16> {
  using Op = __nv_bfloat16;
  using Precision = __nv_bfloat16;
  static constexpr int kK = 16;
  static constexpr int kPad = 8;
  __device__ __forceinline__ static Op make(float v) { return __float2bfloat16_rn(v); }
  template <typename Fragment>
  __device__ __forceinline__ static void round(Fragment&) {}
};

template <typename T>
using TcAccumulator = wmma::fragment<wmma::accumulator, 16, 16, TcOperand<T>::kK, float>;

template <typename Layout>
__device__ __forceinline__ int tile_index(int row, int col, int ld) {
  if constexpr (std::is_same_v<Layout, wmma::row_major>)
    return row * ld + col;
  else
    return col * ld + row;
}

// acc += A[m0 : m0 + 16, 0 : k_end] B[0 : k_end, n0 : n0 + 16] for one warp,
// A and B in shared memory, each row- or column-major with its leading dim.
template <typename T, typename LayoutA, typename LayoutB>
__device__ __forceinline__ void warp_tile_product(TcAccumulator<T>& acc, const typename TcOperand<T>::Op* a, int lda,
                                                  const typename TcOperand<T>::Op* b, int ldb, int m0, int n0,
                                                  int k_end) {
  using Tc = TcOperand<T>;
  for (int k0 = 0; k0 < k_end; k0 += Tc::kK) {
    wmma::fragment<wmma::matrix_a, 16, 16, Tc::kK, typename Tc::Precision, LayoutA> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, Tc::kK, typename Tc::Precision, LayoutB> fb;
    wmma::load_matrix_sync(fa, a + tile_index<LayoutA>(m0, k0, lda), lda);
    wmma::load_matrix_sync(fb, b + tile_index<LayoutB>(k0, n0, ldb), ldb);
    Tc::round(fa);
    Tc::round(fb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}

// The key scales and running log decays of a chunk of L tokens (a multiple
// of 32) by one warp: dts[i] = s of token first + i (1 where key_scale is
// null, 0 past the sequence), acum[i] = the sum of its chunk's log decays up
// to token i. Each lane sums L / 32 consecutive tokens, then a shuffle scan
// over the lanes. The caller synchronises before reading dts and acum.
template <int L>
__device__ __forceinline__ void chunk_decay_scan(const SsdDims& s, const float* log_decay, const float* key_scale,
                                                 int b, int h, int first, float* dts, float* acum) {
  constexpr int kPer = L / 32;
  static_assert(L % 32 == 0, "a whole number of tokens per lane");
  const int lane = threadIdx.x % 32;
  float local[kPer];
  float run = 0.f;
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const int i = lane * kPer + u, t = first + i;
    const bool in = t < s.seq;
    dts[i] = in ? (key_scale != nullptr ? key_scale[dt_offset(s, b, t, h)] : 1.f) : 0.f;
    run += in ? log_decay[dt_offset(s, b, t, h)] : 0.f;
    local[u] = run;
  }
  float inclusive = run;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const float other = __shfl_up_sync(0xffffffffu, inclusive, off);
    if (lane >= off) inclusive += other;
  }
  float before = __shfl_up_sync(0xffffffffu, inclusive, 1);
  if (lane == 0) before = 0.f;
#pragma unroll
  for (int u = 0; u < kPer; ++u) acum[lane * kPer + u] = before + local[u];
}

constexpr size_t align128(size_t bytes) { return (bytes + 127) / 128 * 128; }

// Shared-memory layout of the chunk kernels (byte offsets, each
// 128-aligned): the log decays of a chunk of CHUNK tokens, then tiles of 64
// token rows.
template <typename T, int N, int P, int CHUNK = kTcChunk>
struct TcLayout {
  using Op = typename TcOperand<T>::Op;
  static constexpr int L = kTcChunk;  // rows of every tile
  static constexpr int kLdN = N + TcOperand<T>::kPad;
  static constexpr int kLdP = P + TcOperand<T>::kPad;
  static constexpr int kLdL = L + TcOperand<T>::kPad;                         // Op scores
  static constexpr int kLdLf = L + 4;                                         // float scores
  static constexpr int kLdPf = P + 4;                                         // float outputs
  static constexpr size_t kDecayBytes = align128(2 * sizeof(float) * CHUNK);  // dts, acum
  static constexpr size_t kRowsN = align128(sizeof(Op) * L * kLdN);
  static constexpr size_t kRowsP = align128(sizeof(Op) * L * kLdP);
  // chunk state kernel: Bw (64, N), X (64, P)
  static constexpr size_t kStateB = kDecayBytes;
  static constexpr size_t kStateX = kStateB + kRowsN;
  static constexpr size_t kStateBytes = kStateX + kRowsP;
  // chunk output kernel: C, B (64, N), X (64, P), scores (float, then Op),
  // then the entering state (N, P) whose space the float outputs (64, P) reuse.
  static constexpr size_t kOutC = kDecayBytes;
  static constexpr size_t kOutB = kOutC + kRowsN;
  static constexpr size_t kOutX = kOutB + kRowsN;
  static constexpr size_t kOutGf = kOutX + kRowsP;
  static constexpr size_t kOutG = kOutGf + align128(sizeof(float) * L * kLdLf);
  static constexpr size_t kOutS = kOutG + align128(sizeof(Op) * L * kLdL);
  static constexpr size_t kSBytes = sizeof(Op) * N * kLdP;
  static constexpr size_t kYBytes = sizeof(float) * L * kLdPf;
  static constexpr size_t kOutBytes = kOutS + align128(kSBytes > kYBytes ? kSBytes : kYBytes);
};

// The chunk output kernels' epilogue: each warp's accumulators (64 rows x P
// in 16 x 16 tiles, tile = warp + k * kWarps) through the float tile Ys, plus
// D x_i, stored to y for the rows inside the sequence. Ys may share memory
// with what the last products read: the first barrier waits for every warp.
template <typename T, typename Out, int N, int P, int kPerWarp>
__device__ __forceinline__ void write_outputs(TcAccumulator<T> (&acc)[kPerWarp], float* Ys,
                                              const typename TcOperand<T>::Op* Xs, float D, Out* y, const SsdDims& s,
                                              int b, int h, int row_first) {
  using Lay = TcLayout<T, N, P>;
  constexpr int kColTiles = P / 16;
  const int warp = threadIdx.x / 32;
  __syncthreads();
#pragma unroll
  for (int k = 0; k < kPerWarp; ++k) {
    const int tile = warp + k * kWarps, m0 = tile / kColTiles * 16, n0 = tile % kColTiles * 16;
    wmma::store_matrix_sync(Ys + m0 * Lay::kLdPf + n0, acc[k], Lay::kLdPf, wmma::mem_row_major);
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < kTcChunk * P; idx += kThreads) {
    const int i = idx / P, p = idx % P, t = row_first + i;
    if (t >= s.seq) continue;
    const float value = Ys[i * Lay::kLdPf + p] + D * to_float(Xs[i * Lay::kLdP + p]);
    y[x_offset(s, b, t, h) + p] = from_float<Out>(value);
  }
}

// ---------------------------------------------------------------------------
// The chunk kernels: long chunks (CHUNK in {64, 128, 256}) on the tensor cores, in tiles of
// 64 token rows: fewer chunks means less state traffic between the kernels
// (a chunk's state is N x P floats whatever its length), and the row tiling
// keeps the shared memory of one 64-token chunk. The chunk state kernel accumulates over the
// chunk's 64-token blocks; the output kernel has one block per 64 output rows
// and walks the key blocks up to its own, flash-attention style. Loads are 16
// bytes wide; blocks wholly past the sequence are skipped.

// Rows [first, first + 64) of head h into an Op tile (64, ld), 16 bytes per
// load (rows are 16-byte aligned: widths are multiples of 8), zero past the
// sequence, each value times scale(i).
template <typename T, bool kGroup, int WIDTH, typename Scale>
__device__ __forceinline__ void load_tc_rows_wide(typename TcOperand<T>::Op* tile, int ld, const T* U, const SsdDims& s,
                                                  int b, int h, int first, Scale scale) {
  using Op = typename TcOperand<T>::Op;
  static_assert(std::is_same_v<Op, T>, "inputs are staged in their own type");
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kVecsPerRow = WIDTH / kVec;
  static_assert(WIDTH % kVec == 0, "rows are whole 16-byte vectors");
  for (int idx = threadIdx.x; idx < kTcChunk * kVecsPerRow; idx += kThreads) {
    const int i = idx / kVecsPerRow, k = (idx % kVecsPerRow) * kVec, t = first + i;
    alignas(16) T v[kVec];
    if (t < s.seq) {
      const T* row = U + (kGroup ? bc_offset(s, b, t, h) : x_offset(s, b, t, h)) + k;
      *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(row);
      const float by = scale(i);
#pragma unroll
      for (int u = 0; u < kVec; ++u) v[u] = TcOperand<T>::make(to_float(v[u]) * by);
    } else {
#pragma unroll
      for (int u = 0; u < kVec; ++u) v[u] = TcOperand<T>::make(0.f);
    }
    *reinterpret_cast<uint4*>(tile + i * ld + k) = *reinterpret_cast<const uint4*>(v);
  }
}

// Chunk states: S (N, P) = sum over the chunk's 64-token blocks of
// (w B)^T X, w_j = exp(Acum_last - Acum_j) dt_j; block (chunk, head, batch),
// the accumulators held by the warps across the blocks.
template <typename T, typename Out, int CHUNK, int N, int P>
__global__ void __launch_bounds__(kThreads) ssd_chunk_state(SsdArgs<T, Out> a) {
  using Tc = TcOperand<T>;
  using Op = typename Tc::Op;
  using Lay = TcLayout<T, N, P, CHUNK>;
  constexpr int R = kTcChunk;  // rows per tile
  DEV_EXTERN_SHARED(unsigned char, smem_bytes);
  float* dts = reinterpret_cast<float*>(smem_bytes);
  float* acum = dts + CHUNK;
  Op* Bw = reinterpret_cast<Op*>(smem_bytes + Lay::kStateB);
  Op* Xs = reinterpret_cast<Op*>(smem_bytes + Lay::kStateX);
  const SsdDims& s = a.s;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, chunk_first = c * CHUNK, warp = threadIdx.x / 32;
  if (warp == 0) chunk_decay_scan<CHUNK>(s, a.log_decay, a.key_scale, b, h, chunk_first, dts, acum);
  __syncthreads();
  const float last = acum[CHUNK - 1];
  if (threadIdx.x == 0) a.totals[total_offset(s, b, h, c)] = last;

  constexpr int kColTiles = P / 16, kTiles = (N / 16) * kColTiles, kPerWarp = kTiles / kWarps;
  static_assert(kTiles % kWarps == 0, "state tiles spread evenly over the warps");
  TcAccumulator<T> acc[kPerWarp];
#pragma unroll
  for (int k = 0; k < kPerWarp; ++k) wmma::fill_fragment(acc[k], 0.f);
  for (int j0 = 0; j0 < CHUNK && chunk_first + j0 < s.seq; j0 += R) {
    load_tc_rows_wide<T, false, P>(Xs, Lay::kLdP, a.x, s, b, h, chunk_first + j0, [](int) { return 1.f; });
    load_tc_rows_wide<T, true, N>(Bw, Lay::kLdN, a.Bm, s, b, h, chunk_first + j0,
                                  [&](int i) { return decay_between(last, acum[j0 + i]) * dts[j0 + i]; });
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kPerWarp; ++k) {
      const int tile = warp + k * kWarps, m0 = tile / kColTiles * 16, n0 = tile % kColTiles * 16;
      // A = Bw^T: element (n, j) at Bw[j * ld + n], column-major.
      warp_tile_product<T, wmma::col_major, wmma::row_major>(acc[k], Bw, Lay::kLdN, Xs, Lay::kLdP, m0, n0, R);
    }
    __syncthreads();  // the tiles are free for the next block
  }
  float* out = a.states + chunk_state_offset(s, b, h, c);
#pragma unroll
  for (int k = 0; k < kPerWarp; ++k) {
    const int tile = warp + k * kWarps, m0 = tile / kColTiles * 16, n0 = tile % kColTiles * 16;
    wmma::store_matrix_sync(out + m0 * P + n0, acc[k], P, wmma::mem_row_major);
  }
}

// Chunk outputs: block (row tile of a chunk, head, batch), 64 output rows i;
// for each key block jb up to the row tile's own: scores C_i . B_j (lower
// triangle only on the diagonal block), weighted by exp(Acum_i - Acum_j) dt_j,
// times X_jb into the accumulators; then (exp(Acum_i) C_i) H_c; then + D x.
// Row tiles are numbered heaviest first.
template <typename T, typename Out, int CHUNK, int N, int P>
__global__ void __launch_bounds__(kThreads) ssd_chunk_output(SsdArgs<T, Out> a) {
  using Tc = TcOperand<T>;
  using Op = typename Tc::Op;
  using Lay = TcLayout<T, N, P, CHUNK>;
  constexpr int R = kTcChunk, kRowTiles = CHUNK / R;
  DEV_EXTERN_SHARED(unsigned char, smem_bytes);
  float* dts = reinterpret_cast<float*>(smem_bytes);
  float* acum = dts + CHUNK;
  Op* Cs = reinterpret_cast<Op*>(smem_bytes + Lay::kOutC);
  Op* Bs = reinterpret_cast<Op*>(smem_bytes + Lay::kOutB);
  Op* Xs = reinterpret_cast<Op*>(smem_bytes + Lay::kOutX);
  float* Gf = reinterpret_cast<float*>(smem_bytes + Lay::kOutGf);
  Op* G = reinterpret_cast<Op*>(smem_bytes + Lay::kOutG);
  Op* Ss = reinterpret_cast<Op*>(smem_bytes + Lay::kOutS);
  float* Ys = reinterpret_cast<float*>(smem_bytes + Lay::kOutS);  // after the last product
  const SsdDims& s = a.s;
  const int c = blockIdx.x / kRowTiles, rt = kRowTiles - 1 - blockIdx.x % kRowTiles;
  const int h = blockIdx.y, b = blockIdx.z, warp = threadIdx.x / 32;
  const int chunk_first = c * CHUNK, i0 = rt * R, row_first = chunk_first + i0;
  if (row_first >= s.seq) return;  // the whole tile is padding (uniform over the block)

  if (warp == 0) chunk_decay_scan<CHUNK>(s, a.log_decay, a.key_scale, b, h, chunk_first, dts, acum);
  const auto one = [](int) { return 1.f; };
  load_tc_rows_wide<T, true, N>(Cs, Lay::kLdN, a.Cm, s, b, h, row_first, one);
  const float* S = a.states + chunk_state_offset(s, b, h, c);
  for (int e = threadIdx.x * 4; e < N * P; e += kThreads * 4) {  // P is a multiple of 4
    const float4 v = *reinterpret_cast<const float4*>(S + e);
    Op* dst = Ss + (e / P) * Lay::kLdP + e % P;
    dst[0] = Tc::make(v.x);
    dst[1] = Tc::make(v.y);
    dst[2] = Tc::make(v.z);
    dst[3] = Tc::make(v.w);
  }

  constexpr int kColTiles = P / 16, kTiles = (R / 16) * kColTiles, kPerWarp = kTiles / kWarps;
  static_assert(kTiles % kWarps == 0, "output tiles spread evenly over the warps");
  TcAccumulator<T> acc[kPerWarp];
#pragma unroll
  for (int k = 0; k < kPerWarp; ++k) wmma::fill_fragment(acc[k], 0.f);
  for (int jb = 0; jb <= rt; ++jb) {
    const bool diagonal = jb == rt;
    const int j0 = jb * R;
    load_tc_rows_wide<T, true, N>(Bs, Lay::kLdN, a.Bm, s, b, h, chunk_first + j0, one);
    load_tc_rows_wide<T, false, P>(Xs, Lay::kLdP, a.x, s, b, h, chunk_first + j0, one);
    __syncthreads();  // (the first time also the decays, C and the state)
    for (int tile = warp; tile < 16; tile += kWarps) {
      const int tm = tile / 4, tn = tile % 4;
      if (diagonal && tn > tm) continue;  // masked anyway
      TcAccumulator<T> scores;
      wmma::fill_fragment(scores, 0.f);
      // B operand = B^T: element (n, j) at Bs[j * ld + n], column-major.
      warp_tile_product<T, wmma::row_major, wmma::col_major>(scores, Cs, Lay::kLdN, Bs, Lay::kLdN, tm * 16, tn * 16, N);
      wmma::store_matrix_sync(Gf + tm * 16 * Lay::kLdLf + tn * 16, scores, Lay::kLdLf, wmma::mem_row_major);
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < R * R; idx += kThreads) {
      const int i = idx / R, j = idx % R;
      const float g = (!diagonal || j <= i)
                          ? Gf[i * Lay::kLdLf + j] * decay_between(acum[i0 + i], acum[j0 + j]) * dts[j0 + j]
                          : 0.f;
      G[i * Lay::kLdL + j] = Tc::make(g);
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kPerWarp; ++k) {
      const int tile = warp + k * kWarps, m0 = tile / kColTiles * 16, n0 = tile % kColTiles * 16;
      // On the diagonal block the scores right of row tile m0's diagonal are zero.
      warp_tile_product<T, wmma::row_major, wmma::row_major>(acc[k], G, Lay::kLdL, Xs, Lay::kLdP, m0, n0,
                                                             diagonal ? m0 + 16 : R);
    }
    __syncthreads();  // Bs, Xs, Gf and G are free (Xs keeps this tile's own rows after the last block)
  }
  for (int idx = threadIdx.x; idx < R * N; idx += kThreads) {  // C_i <- exp(Acum_i) C_i for the inter term
    const int i = idx / N, n = idx % N;
    Cs[i * Lay::kLdN + n] = Tc::make(to_float(Cs[i * Lay::kLdN + n]) * expf(acum[i0 + i]));
  }
  __syncthreads();
#pragma unroll
  for (int k = 0; k < kPerWarp; ++k) {
    const int tile = warp + k * kWarps, m0 = tile / kColTiles * 16, n0 = tile % kColTiles * 16;
    warp_tile_product<T, wmma::row_major, wmma::row_major>(acc[k], Cs, Lay::kLdN, Ss, Lay::kLdP, m0, n0, N);
  }
  write_outputs<T, Out, N, P>(acc, Ys, Xs, a.D != nullptr ? a.D[h] : 0.f, a.y, s, b, h, row_first);
}

}  // namespace bla::kernels::ssd
