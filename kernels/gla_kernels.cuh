// The gated recurrence's three chunk kernels (bla_kernels/gla.h states the
// recurrence). Plain SIMT in the compute type T (float or double), one block
// of kGlaThreads per (chunk, head, batch) for the chunk kernels and one thread
// per state element for the scan. Heads-first contiguous layout: q, k
// (B, H, T, Dk), v and o (B, H, T, Dv), g (B, H, T, Dg) with Dg = Dk on the
// key axis and Dv on the value axis. Workspace: the chunk states
// (B, H, nchunks, Dk, Dv), overwritten by the scan with the state entering
// each chunk, and each chunk's summed log gate (B, H, nchunks, Dg).
//
// Inside a chunk the gates are summed from its first token (b_i), so every
// decay is exp(b_i - b_j) for i later than j, or exp(b_last - b_j), or
// exp(b_i): exponents <= 0, clamped at 0 against rounding.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <type_traits>

#include "device_common.cuh"
#include "gla_launch.h"

namespace bla::kernels::gla {

constexpr int kGlaChunk = 64;     // tokens per chunk
constexpr int kGlaThreads = 256;  // threads of each chunk kernel and of the scan

struct GlaDims {
  int batch, heads, seq, dk, dv;
  int nchunks;      // ceil(seq / kGlaChunk)
  bool value_axis;  // the gate multiplies the state's value axis (Dg = Dv) instead of its key axis (Dg = Dk)
  bool reversed;    // backward in time: token t is row T - 1 - t, its gate row T - t (none for t = 0)
  __host__ __device__ int dg() const { return value_axis ? dv : dk; }
};

inline GlaDims dims_of(const detail::GlaShape& shape) {
  return {shape.batch,      shape.heads,   shape.seq, shape.dk, shape.dv, (shape.seq + kGlaChunk - 1) / kGlaChunk,
          shape.value_axis, shape.reversed};
}

// A (B, H, T, width) operand: element (b, h, t, d) at
// ptr[b * batch + h * head + t * token + d].
template <typename P>
struct GlaOperand {
  P* __restrict__ ptr;
  long long batch, head, token;
};

// An input operand of any element type (gla_launch.h); read as T.
struct GlaIn : GlaOperand<const void> {
  detail::GlaElement element;  // read through gather (below): float64 inputs come with T = double only
};

// An element as the compute type T (float or double).
template <typename T, typename E>
__device__ __forceinline__ T convert(E x) {
  if constexpr (std::is_same_v<E, __nv_bfloat16>) {
    return static_cast<T>(__bfloat162float(x));
  } else if constexpr (std::is_same_v<E, __half>) {
    return static_cast<T>(__half2float(x));
  } else {
    return static_cast<T>(x);
  }
}

// A tile's loads with many in flight: each thread issues kGatherLoads<T>
// loads before it stores any, so it waits for memory once per group instead of
// once per element, and the element type is fixed for the whole tile (one
// branch, not one per element). offset(idx) is element idx's place in src,
// or -1 for a 0 (padding, rows past the sequence); put(idx, x) stores it.
template <typename T>
constexpr int kGatherLoads = sizeof(T) > 4 ? 8 : 16;  // (16 doubles spill in the float64 state kernel)

template <typename T, typename E, typename Offset, typename Put>
__device__ __forceinline__ void gather_as(const E* __restrict__ src, int count, Offset offset, Put put) {
  constexpr int n = kGatherLoads<T>;
  for (int first = threadIdx.x; first < count; first += n * blockDim.x) {
    T x[n];
#pragma unroll
    for (int u = 0; u < n; ++u) {
      const int idx = first + u * blockDim.x;
      const long long at = idx < count ? offset(idx) : -1;
      x[u] = at >= 0 ? convert<T>(src[at]) : T(0);
    }
#pragma unroll
    for (int u = 0; u < n; ++u) {
      const int idx = first + u * blockDim.x;
      if (idx < count) put(idx, x[u]);
    }
  }
}

// gather_as over an input of any element type (float64 with T = double).
template <typename T, typename Offset, typename Put>
__device__ __forceinline__ void gather(const GlaIn& src, int count, Offset offset, Put put) {
  if constexpr (std::is_same_v<T, double>) {
    gather_as<T>(static_cast<const double*>(src.ptr), count, offset, put);
  } else {
    switch (src.element) {
      case detail::GlaElement::kBFloat16:
        gather_as<T>(static_cast<const __nv_bfloat16*>(src.ptr), count, offset, put);
        break;
      case detail::GlaElement::kHalf: gather_as<T>(static_cast<const __half*>(src.ptr), count, offset, put); break;
      default: gather_as<T>(static_cast<const float*>(src.ptr), count, offset, put);
    }
  }
}

// Where the output kernel reads the state entering each chunk, element
// (b, h, c, row, col) at ptr[b * batch + h * head + c * chunk + row * row_stride
// + col * col_stride]: the scan's result in the workspace, or states another
// pass computed (a transposed view of them: the backward's passes share
// states, src/bla/ops/gla/backward.h).
template <typename T>
struct GlaEnteringStates {
  const T* __restrict__ ptr;
  long long batch, head, chunk, row_stride, col_stride;
};

template <typename T>
struct GlaArgs {
  GlaIn q, k, v, g;
  GlaOperand<T> out;
  T* __restrict__ states;       // (B, H, nchunks, Dk, Dv)
  T* __restrict__ totals;       // (B, H, nchunks, Dg)
  T* __restrict__ final_state;  // (B, H, Dk, Dv) or null
  GlaEnteringStates<T> entering;
  T scale;
  GlaDims s;
};

__device__ __forceinline__ float exp_nonpositive(float x) { return expf(fminf(x, 0.f)); }  // __expf: --use_fast_math
__device__ __forceinline__ double exp_nonpositive(double x) { return exp(fmin(x, 0.0)); }

// Where token t's row of q, k, v or o starts (reversed: row T - 1 - t).
template <typename P>
__device__ __forceinline__ long long row_offset(const GlaOperand<P>& x, const GlaDims& s, int b, int h, int t) {
  return b * x.batch + h * x.head + (s.reversed ? s.seq - 1 - t : t) * x.token;
}
// Token t's log gate in column d: g_t, or reversed g_{T-t} with g_T = 0 (the
// backward passes' gates move one token, src/bla/ops/gla/backward.h); 0 past
// the sequence. gate_offset is where that gate lies in g, or -1 where it is 0.
__device__ __forceinline__ long long gate_offset(const GlaIn& g, const GlaDims& s, int b, int h, int t, int d) {
  const int row = s.reversed ? s.seq - t : t;
  if (t >= s.seq || row >= s.seq) return -1;
  return b * g.batch + h * g.head + row * g.token + d;
}
__device__ __forceinline__ size_t chunk_state_offset(const GlaDims& s, int b, int h, int c) {
  return ((static_cast<size_t>(b) * s.heads + h) * s.nchunks + c) * s.dk * s.dv;
}
__device__ __forceinline__ size_t total_offset(const GlaDims& s, int b, int h, int c) {
  return ((static_cast<size_t>(b) * s.heads + h) * s.nchunks + c) * s.dg();
}

// Chunk c's entering state (Dk, Dv) through a.entering, as `put(idx, x)`
// calls with idx = row * cols + col over rows x cols (rows >= Dk, cols >= Dv;
// 0 outside the state). The loads walk the source's contiguous axis (its
// columns, or its rows where it is a transposed view).
template <typename T, typename Put>
__device__ __forceinline__ void load_entering_state(const GlaArgs<T>& a, int b, int h, int c, int rows, int cols,
                                                    Put put) {
  const GlaEnteringStates<T> e = a.entering;
  const T* base = e.ptr + b * e.batch + h * e.head + c * e.chunk;
  const int Dk = a.s.dk, Dv = a.s.dv;
  const bool by_columns = e.col_stride != 1 && e.row_stride == 1;
  gather_as<T>(
      base, rows * cols,
      [=](int idx) {
        const int r = by_columns ? idx % rows : idx / cols, x = by_columns ? idx / rows : idx % cols;
        return r < Dk && x < Dv ? r * e.row_stride + x * e.col_stride : -1LL;
      },
      [=](int idx, T v) { put(by_columns ? idx % rows * cols + idx / rows : idx, v); });
}

// Leading dimensions in shared memory: rows padded by one so that threads
// walking rows (the pairwise loops) fall in different banks.
__host__ __device__ inline int padded(int width) { return width + 1; }

// Loads `width` columns of the chunk's rows into dst (row stride ld); rows
// past the sequence are 0 (no key, no value, no decay).
template <typename T>
__device__ void load_rows(T* dst, int ld, const GlaIn& src, const GlaDims& s, int b, int h, int first, int width) {
  gather<T>(
      src, kGlaChunk * width,
      [=](int idx) {
        const int t = first + idx / width;
        return t < s.seq ? row_offset(src, s, b, h, t) + idx % width : -1LL;
      },
      [=](int idx, T x) { dst[idx / width * ld + idx % width] = x; });
}
// The same for the chunk's log gates (gate_offset).
template <typename T>
__device__ void load_gates(T* dst, int ld, const GlaIn& g, const GlaDims& s, int b, int h, int first) {
  const int width = s.dg();
  gather<T>(
      g, kGlaChunk * width, [=](int idx) { return gate_offset(g, s, b, h, first + idx / width, idx % width); },
      [=](int idx, T x) { dst[idx / width * ld + idx % width] = x; });
}

// b_i = g_0 + ... + g_i within the chunk, in place, one thread per column.
template <typename T>
__device__ void running_sum_rows(T* b, int ld, int width) {
  for (int d = threadIdx.x; d < width; d += blockDim.x) {
    T run = 0;
    for (int i = 0; i < kGlaChunk; ++i) {
      run += b[i * ld + d];
      b[i * ld + d] = run;
    }
  }
}

// Shared elements of gla_chunk_state.
inline size_t gla_state_smem_elements(const GlaDims& s) {
  return static_cast<size_t>(kGlaChunk) * (s.dk + s.dv + padded(s.dg()));
}

// Each chunk's own addition to the state by its end,
//   U = sum_j (k_j * e^{b_last - b_j}) v_j^T    (key axis; the weight on v_j for the value axis),
// and its summed log gate b_last.
template <typename T>
__global__ void __launch_bounds__(kGlaThreads) gla_chunk_state(GlaArgs<T> a) {
  DEV_EXTERN_SHARED(unsigned char, gla_smem);
  T* ks = reinterpret_cast<T*>(gla_smem);  // (C, Dk)
  const GlaDims& s = a.s;
  const int Dk = s.dk, Dv = s.dv, Dg = s.dg(), ldb = padded(Dg);
  T* vs = ks + kGlaChunk * Dk;  // (C, Dv)
  T* bs = vs + kGlaChunk * Dv;  // (C, Dg + 1)
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, first = c * kGlaChunk;
  load_rows(ks, Dk, a.k, s, b, h, first, Dk);
  load_rows(vs, Dv, a.v, s, b, h, first, Dv);
  load_gates(bs, ldb, a.g, s, b, h, first);
  __syncthreads();
  running_sum_rows(bs, ldb, Dg);
  __syncthreads();
  const T* last = bs + (kGlaChunk - 1) * ldb;
  // The decay from each token to the chunk's end, folded into k or v.
  T* weighted = s.value_axis ? vs : ks;
  const int width = s.value_axis ? Dv : Dk;
  for (int idx = threadIdx.x; idx < kGlaChunk * width; idx += blockDim.x) {
    const int j = idx / width, d = idx % width;
    weighted[j * width + d] *= exp_nonpositive(last[d] - bs[j * ldb + d]);
  }
  __syncthreads();
  T* U = a.states + chunk_state_offset(s, b, h, c);
  for (int idx = threadIdx.x; idx < Dk * Dv; idx += blockDim.x) {
    const int dk = idx / Dv, dv = idx % Dv;
    T acc = 0;
    for (int j = 0; j < kGlaChunk; ++j) acc += ks[j * Dk + dk] * vs[j * Dv + dv];
    U[idx] = acc;
  }
  T* total = a.totals + total_offset(s, b, h, c);
  for (int d = threadIdx.x; d < Dg; d += blockDim.x) total[d] = last[d];
}

// The scan over chunks, one thread per state element (dk, dv) of one
// (head, batch): the states entering each chunk replace the chunk states,
//   S_0 = 0,  S_{c+1} = e^{b_last,c} * S_c + U_c  (on the gated axis),
// and the last one is the final state. The chunk states and totals are read
// kScanAhead chunks ahead of the one being written, so that each thread has
// that many loads in flight instead of waiting on one per chunk.
constexpr int kScanAhead = 4;

template <typename T>
__global__ void __launch_bounds__(kGlaThreads) gla_state_scan(GlaArgs<T> a) {
  const GlaDims& s = a.s;
  const int e = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, b = blockIdx.z;
  if (e >= s.dk * s.dv) return;
  const int gated = s.value_axis ? e % s.dv : e / s.dv, nc = s.nchunks, Dg = s.dg();
  const size_t NP = static_cast<size_t>(s.dk) * s.dv;
  T* col = a.states + chunk_state_offset(s, b, h, 0) + e;
  const T* total = a.totals + total_offset(s, b, h, 0) + gated;
  T add[kScanAhead], log_decay[kScanAhead];
#pragma unroll
  for (int u = 0; u < kScanAhead; ++u) {
    add[u] = u < nc ? col[u * NP] : T(0);
    log_decay[u] = u < nc ? total[static_cast<size_t>(u) * Dg] : T(0);
  }
  T run = 0;
  for (int c0 = 0; c0 < nc; c0 += kScanAhead) {
#pragma unroll
    for (int u = 0; u < kScanAhead; ++u) {
      const int c = c0 + u;
      if (c < nc) {
        const T this_add = add[u], decay = exp_nonpositive(log_decay[u]);
        const int next = c + kScanAhead;
        if (next < nc) {
          add[u] = col[next * NP];
          log_decay[u] = total[static_cast<size_t>(next) * Dg];
        }
        col[c * NP] = run;
        run = decay * run + this_add;
      }
    }
  }
  if (a.final_state != nullptr) a.final_state[(static_cast<size_t>(b) * s.heads + h) * NP + e] = run;
}

// Shared elements of gla_chunk_output.
inline size_t gla_output_smem_elements(const GlaDims& s) {
  const size_t C = kGlaChunk;
  return C * (2 * padded(s.dk) + s.dv + padded(s.dg())) + static_cast<size_t>(s.dk) * s.dv + C * padded(kGlaChunk);
}

// Each chunk's outputs from its own tokens and the state entering it:
//   key axis:   o_i = s (sum_{j<=i} A_ij v_j + (q_i * e^{b_i})^T S),
//               A_ij = sum_d q_i[d] k_j[d] e^{b_i[d] - b_j[d]};
//   value axis: o_i[e] = s (sum_{j<=i} (q_i . k_j) v_j[e] e^{b_i[e] - b_j[e]} + e^{b_i[e]} (q_i^T S)[e]).
template <typename T>
__global__ void __launch_bounds__(kGlaThreads) gla_chunk_output(GlaArgs<T> a) {
  DEV_EXTERN_SHARED(unsigned char, gla_smem);
  const GlaDims& s = a.s;
  constexpr int C = kGlaChunk;
  const int Dk = s.dk, Dv = s.dv, Dg = s.dg(), ldk = padded(Dk), ldb = padded(Dg), lda = padded(C);
  T* qs = reinterpret_cast<T*>(gla_smem);  // (C, Dk + 1)
  T* ks = qs + C * ldk;                    // (C, Dk + 1)
  T* vs = ks + C * ldk;                    // (C, Dv)
  T* bs = vs + C * Dv;                     // (C, Dg + 1)
  T* S = bs + C * ldb;                     // (Dk, Dv): the state entering the chunk
  T* A = S + Dk * Dv;                      // (C, C + 1)
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, first = c * C;
  load_rows(qs, ldk, a.q, s, b, h, first, Dk);
  load_rows(ks, ldk, a.k, s, b, h, first, Dk);
  load_rows(vs, Dv, a.v, s, b, h, first, Dv);
  load_gates(bs, ldb, a.g, s, b, h, first);
  load_entering_state(a, b, h, c, Dk, Dv, [=](int idx, T x) { S[idx] = x; });
  __syncthreads();
  running_sum_rows(bs, ldb, Dg);
  __syncthreads();

  // The chunk's own pairs (i, j <= i).
  for (int idx = threadIdx.x; idx < C * C; idx += blockDim.x) {
    const int i = idx / C, j = idx % C;
    T acc = 0;
    if (j <= i) {
      const T* qi = qs + i * ldk;
      const T* kj = ks + j * ldk;
      if (s.value_axis) {
        for (int d = 0; d < Dk; ++d) acc += qi[d] * kj[d];
      } else {
        const T* bi = bs + i * ldb;
        const T* bj = bs + j * ldb;
        for (int d = 0; d < Dk; ++d) acc += qi[d] * kj[d] * exp_nonpositive(bi[d] - bj[d]);
      }
    }
    A[i * lda + j] = acc;
  }
  __syncthreads();
  if (!s.value_axis) {  // q_i * e^{b_i} for the state's term
    for (int idx = threadIdx.x; idx < C * Dk; idx += blockDim.x) {
      const int i = idx / Dk, d = idx % Dk;
      qs[i * ldk + d] *= exp_nonpositive(bs[i * ldb + d]);
    }
    __syncthreads();
  }

  for (int idx = threadIdx.x; idx < C * Dv; idx += blockDim.x) {
    const int i = idx / Dv, e = idx % Dv, t = first + i;
    if (t >= s.seq) continue;
    const T* Ai = A + i * lda;
    const T* qi = qs + i * ldk;
    T own = 0, from_state = 0;
    for (int d = 0; d < Dk; ++d) from_state += qi[d] * S[d * Dv + e];
    if (s.value_axis) {
      const T bie = bs[i * ldb + e];
      for (int j = 0; j <= i; ++j) own += Ai[j] * vs[j * Dv + e] * exp_nonpositive(bie - bs[j * ldb + e]);
      from_state *= exp_nonpositive(bie);
    } else {
      for (int j = 0; j <= i; ++j) own += Ai[j] * vs[j * Dv + e];
    }
    a.out.ptr[row_offset(a.out, s, b, h, t) + e] = a.scale * (own + from_state);
  }
}

}  // namespace bla::kernels::gla
