// SSD (Mamba2-like) recurrence on the GPU, development versions side by side
// (ssd_reference.h has the definition and the chunked form they compute;
// README_ssd.md the versions). Plain CUDA, no LibTorch.
//
//   v0  recurrent: one block per (head, batch), one thread per column p of
//       the state, a token loop. The GPU statement of the definition.
//   v1  chunked, fp32 SIMT, three kernels: chunk states, a scan over chunks,
//       chunk outputs. Any chunk length that fits shared memory, any N, P.
//       The simple one to trust. Also the backward (v1 only).
//   v2  chunked on tensor cores (WMMA; tf32 operands for float inputs, bf16
//       for bf16 inputs; fp32 accumulation), chunk 64, N, P in {64, 128}:
//       the same three kernels with the two chunk kernels' products on the
//       tensor cores and the causal half of the intra-chunk product skipped.
//   v3  v2 for chunks of 64, 128 or 256 tokens, in tiles of 64 rows (fewer
//       chunk states between the kernels), with 16-byte loads: the kernels
//       production runs, in ../ssd_kernels.cuh (with the scan and the
//       tensor-core helpers v2 shares), launched here through SsdArgs.
//
// Inputs x, Bm, Cm, dy are T (float or bf16); dt, A, D, the initial and final
// states and every workspace are float. Within a chunk the log decays are
// summed in float; each exponent is "later minus earlier", clamped at 0 so a
// rounding can never make a weight exceed 1.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstddef>
#include <type_traits>

#include "../device_common.cuh"
#include "../ssd_kernels.cuh"

namespace ssd_dev {

using namespace bla::kernels::ssd;  // dims, offsets, the scan, the tensor-core helpers, v3
using bla::kernels::detail::warp_sum;

// Row of head h in a (B, T, H, N) per-head gradient workspace.
__device__ __forceinline__ size_t head_bc_offset(const SsdDims& s, int b, int t, int h) {
  return ((static_cast<size_t>(b) * s.seq + t) * s.heads + h) * s.d_state;
}

template <typename T>
struct SsdForwardArgs {
  const T* x;          // (B, T, H, P)
  const float* dt;     // (B, T, H)
  const float* A;      // (H)
  const float* log_decay;  // (B, T, H): dt A, for v2 and v3 (../ssd_kernels.cuh's chunk_decay_scan)
  const T* Bm;         // (B, T, G, N)
  const T* Cm;         // (B, T, G, N)
  const float* D;      // (H) or null
  const float* h0;     // (B, H, N, P) or null
  T* y;                // (B, T, H, P)
  float* final_state;  // (B, H, N, P)
  float* states;       // (B, H, nchunks, N, P): chunk states, then the states entering each chunk
  float* totals;       // (B, H, nchunks): each chunk's summed log decay
  SsdDims s;
};

// ---------------------------------------------------------------------------
// v0: the recurrence, token by token. Block (head, batch), P threads; thread
// p holds column p of the state (N floats) in registers. B, C and dt of 32
// tokens at a time pass through shared memory.
template <typename T, int N>
__global__ void ssd_v0_recurrent(SsdForwardArgs<T> a) {
  constexpr int kTile = 32;
  __shared__ float Bs[kTile][N], Cs[kTile][N], dts[kTile];
  const SsdDims& s = a.s;
  const int h = blockIdx.x, b = blockIdx.y, p = threadIdx.x, P = s.head_dim;
  const float A = a.A[h], D = a.D != nullptr ? a.D[h] : 0.f;
  const size_t so = state_offset(s, b, h);
  float st[N];
#pragma unroll
  for (int n = 0; n < N; ++n) st[n] = a.h0 != nullptr ? a.h0[so + static_cast<size_t>(n) * P + p] : 0.f;
  for (int t0 = 0; t0 < s.seq; t0 += kTile) {
    const int count = min(kTile, s.seq - t0);
    __syncthreads();  // the previous tile is consumed
    for (int idx = threadIdx.x; idx < count * N; idx += blockDim.x) {
      const int i = idx / N, n = idx % N;
      const size_t row = bc_offset(s, b, t0 + i, h);
      Bs[i][n] = to_float(a.Bm[row + n]);
      Cs[i][n] = to_float(a.Cm[row + n]);
    }
    for (int i = threadIdx.x; i < count; i += blockDim.x) dts[i] = a.dt[dt_offset(s, b, t0 + i, h)];
    __syncthreads();
    for (int i = 0; i < count; ++i) {
      const float dt = dts[i], decay = expf(dt * A);
      const size_t xo = x_offset(s, b, t0 + i, h) + p;
      const float xv = to_float(a.x[xo]), in = dt * xv;
      float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int n = 0; n < N; ++n) {
        st[n] = fmaf(decay, st[n], in * Bs[i][n]);
        acc[n % 4] = fmaf(Cs[i][n], st[n], acc[n % 4]);
      }
      a.y[xo] = from_float<T>((acc[0] + acc[1]) + (acc[2] + acc[3]) + D * xv);
    }
  }
#pragma unroll
  for (int n = 0; n < N; ++n) a.final_state[so + static_cast<size_t>(n) * P + p] = st[n];
}

// ---------------------------------------------------------------------------
// v1: chunked, fp32 SIMT, any chunk length and dimensions.

// dts[i] = dt of token first + i (0 past the sequence: decay 1, no input, so
// padding passes the state through) and acum[i] = sum_{k <= i} dts[k] A.
// Whole block; ends synchronised.
__device__ __forceinline__ void load_chunk_decay(const SsdDims& s, const float* dt, float A, int b, int h, int first,
                                                 float* dts, float* acum) {
  for (int i = threadIdx.x; i < s.chunk; i += blockDim.x) {
    const int t = first + i;
    const float d = t < s.seq ? dt[dt_offset(s, b, t, h)] : 0.f;
    dts[i] = d;
    acum[i] = d * A;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float run = 0.f;
    for (int i = 0; i < s.chunk; ++i) {
      run += acum[i];
      acum[i] = run;
    }
  }
  __syncthreads();
}

// Rows [first, first + chunk) of head h into a (chunk, ld) float tile, zero
// past the sequence. kGroup: U is a (B, T, G, N) tensor read at h's group;
// otherwise a (B, T, H, P) one.
template <typename T, bool kGroup>
__device__ __forceinline__ void load_chunk_rows(float* tile, int ld, const T* U, const SsdDims& s, int b, int h,
                                                int first) {
  const int width = kGroup ? s.d_state : s.head_dim;
  for (int idx = threadIdx.x; idx < s.chunk * width; idx += blockDim.x) {
    const int i = idx / width, k = idx % width, t = first + i;
    float v = 0.f;
    if (t < s.seq) v = to_float(U[(kGroup ? bc_offset(s, b, t, h) : x_offset(s, b, t, h)) + k]);
    tile[i * ld + k] = v;
  }
}

// One chunk's (N, P) matrix sum_i w_i U_i V_i^T, block (chunk, head, batch).
// Forward (kGradient false): U = Bm, V = x, w_i = exp(Acum_last - Acum_i) dt_i,
// the state the chunk adds by its end; also writes the chunk's total log decay.
// Gradient: U = Cm, V = dy, w_i = exp(Acum_i), what the chunk's outputs send
// back to the state entering it.
template <typename T, bool kGradient>
__global__ void __launch_bounds__(kThreads) ssd_v1_chunk_state(const T* U, const T* V, const float* dt, const float* A,
                                                               float* states, float* totals, SsdDims s) {
  DEV_EXTERN_SHARED(float, smem);
  const int L = s.chunk, N = s.d_state, P = s.head_dim;
  float* dts = smem;
  float* acum = dts + L;
  float* w = acum + L;
  float* Us = w + L;       // (L, N)
  float* Vs = Us + L * N;  // (L, P)
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, first = c * L;
  load_chunk_decay(s, dt, A[h], b, h, first, dts, acum);
  for (int i = threadIdx.x; i < L; i += blockDim.x)
    w[i] = kGradient ? expf(acum[i]) : decay_between(acum[L - 1], acum[i]) * dts[i];
  load_chunk_rows<T, true>(Us, N, U, s, b, h, first);
  load_chunk_rows<T, false>(Vs, P, V, s, b, h, first);
  if (!kGradient && threadIdx.x == 0) totals[total_offset(s, b, h, c)] = acum[L - 1];
  __syncthreads();
  float* out = states + chunk_state_offset(s, b, h, c);
  for (int e = threadIdx.x; e < N * P; e += blockDim.x) {
    const int n = e / P, p = e % P;
    float acc = 0.f;
    for (int i = 0; i < L; ++i) acc = fmaf(w[i] * Us[i * N + n], Vs[i * P + p], acc);
    out[e] = acc;
  }
}

// The same scan backwards for the gradient: dstates[c] holds on entry what
// chunk c's outputs send to the state entering it, and on exit dH_c, the
// gradient of the state at the end of chunk c (0 for the last: no gradient
// into the final state); dh0 (if not null) the gradient of the initial state.
__global__ void __launch_bounds__(kThreads)
    ssd_v1_state_pass_reverse(float* dstates, const float* totals, float* dh0, SsdDims s) {
  const int NP = s.d_state * s.head_dim;
  const int e = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, b = blockIdx.z;
  if (e >= NP) return;
  float run = 0.f;
  float* col = dstates + chunk_state_offset(s, b, h, 0) + e;
  const float* total = totals + total_offset(s, b, h, 0);
#pragma unroll 4
  for (int c = s.nchunks - 1; c >= 0; --c) {
    const float add = col[static_cast<size_t>(c) * NP];
    col[static_cast<size_t>(c) * NP] = run;
    run = fmaf(expf(total[c]), run, add);
  }
  if (dh0 != nullptr) dh0[state_offset(s, b, h) + e] = run;
}

// Shared floats of ssd_v1_chunk_output for chunk L (rows of B and C padded to
// N + 1 so that walking j in the score loop spreads over the banks).
inline size_t ssd_v1_output_smem(int L, int N, int P) {
  return sizeof(float) * (2 * static_cast<size_t>(L) + 2 * static_cast<size_t>(L) * (N + 1) +
                          static_cast<size_t>(L) * P + static_cast<size_t>(L) * L);
}
inline size_t ssd_v1_state_smem(int L, int N, int P) {
  return sizeof(float) * (3 * static_cast<size_t>(L) + static_cast<size_t>(L) * N + static_cast<size_t>(L) * P);
}

// Chunk outputs, block (chunk, head, batch): y_i = sum_{j <= i} G_ij x_j with
// G_ij = (C_i . B_j) exp(Acum_i - Acum_j) dt_j, plus exp(Acum_i) C_i^T H_c
// (H_c the state entering the chunk, from the scan), plus D x_i.
template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_v1_chunk_output(SsdForwardArgs<T> a) {
  DEV_EXTERN_SHARED(float, smem);
  const SsdDims& s = a.s;
  const int L = s.chunk, N = s.d_state, P = s.head_dim, ldN = N + 1;
  float* dts = smem;
  float* acum = dts + L;
  float* Cs = acum + L;      // (L, N + 1)
  float* Bs = Cs + L * ldN;  // (L, N + 1)
  float* Xs = Bs + L * ldN;  // (L, P)
  float* G = Xs + L * P;     // (L, L)
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, first = c * L;
  load_chunk_decay(s, a.dt, a.A[h], b, h, first, dts, acum);
  load_chunk_rows<T, true>(Cs, ldN, a.Cm, s, b, h, first);
  load_chunk_rows<T, true>(Bs, ldN, a.Bm, s, b, h, first);
  load_chunk_rows<T, false>(Xs, P, a.x, s, b, h, first);
  __syncthreads();
  for (int idx = threadIdx.x; idx < L * L; idx += blockDim.x) {
    const int i = idx / L, j = idx % L;
    float g = 0.f;
    if (j <= i) {
      float dot = 0.f;
      for (int n = 0; n < N; ++n) dot = fmaf(Cs[i * ldN + n], Bs[j * ldN + n], dot);
      g = dot * decay_between(acum[i], acum[j]) * dts[j];
    }
    G[idx] = g;
  }
  __syncthreads();
  const float* S = a.states + chunk_state_offset(s, b, h, c);  // entering state (N, P)
  const float D = a.D != nullptr ? a.D[h] : 0.f;
  for (int idx = threadIdx.x; idx < L * P; idx += blockDim.x) {
    const int i = idx / P, p = idx % P, t = first + i;
    if (t >= s.seq) continue;
    float intra = 0.f, inter = 0.f;
    for (int j = 0; j <= i; ++j) intra = fmaf(G[i * L + j], Xs[j * P + p], intra);
    for (int n = 0; n < N; ++n) inter = fmaf(Cs[i * ldN + n], S[static_cast<size_t>(n) * P + p], inter);
    a.y[x_offset(s, b, t, h) + p] = from_float<T>(intra + expf(acum[i]) * inter + D * Xs[i * P + p]);
  }
}

// ---------------------------------------------------------------------------
// v1 backward. With the entering states H_c (forward scan) and the gradients
// dH_c of the chunk-end states (reverse scan), each chunk is independent:
//   u_i   = sum_{j >= i} (C_j . B_i) e(j, i) dy_j + e(last, i) dH_c^T B_i   (P)
//   dx_i  = D dy_i + dt_i u_i
//   dB_i  = dt_i [ sum_{j >= i} (x_i . dy_j) e(j, i) C_j + e(last, i) dH_c x_i ]
//   dC_i  = sum_{j <= i} (x_j . dy_i) e(i, j) dt_j B_j + e(i, first-1) H_c dy_i
// with e(i, j) = exp(Acum_i - Acum_j). The decays: every weight depends on
// the log decays l_t = dt_t A only through exp(Lambda_i - Lambda_j), Lambda
// the cumulative sum over the sequence, so dL/dLambda_k = (terms with k the
// later end) - (terms with k the earlier end) = dy_k . C_k^T h_k
// - dt_k x_k . u_k = C_k . dC_k(head) - dt_k (u_k . x_k); dl_t is the reverse
// cumulative sum of that over the whole sequence, ddt_t = u_t . x_t + A dl_t
// (u . x is the derivative through the input dt B x^T), dA = sum dt_t dl_t.

struct SsdBackwardArgs {
  const float* x;
  const float* dt;
  const float* A;
  const float* Bm;
  const float* Cm;
  const float* D;
  const float* dy;
  const float* states;   // (B, H, nchunks, N, P) entering states
  const float* dstates;  // (B, H, nchunks, N, P) dH_c
  float* dx;             // (B, T, H, P)
  float* dB_head;        // (B, T, H, N): per head, summed over the group later
  float* dC_head;        // (B, T, H, N)
  float* ddt_direct;     // (B, T, H): u_t . x_t
  float* dlambda;        // (B, T, H): dL/dLambda_t
  SsdDims s;
};

inline size_t ssd_v1_backward_smem(int L, int N, int P) {
  return sizeof(float) * (2 * static_cast<size_t>(L) + 2 * static_cast<size_t>(L) * (N + 1) +
                          2 * static_cast<size_t>(L) * (P + 1) + 2 * static_cast<size_t>(L) * L);
}

// Block (chunk, head, batch); a warp per token row so that the sums over p
// (for ddt) and over n (for dLambda) are warp reductions.
__global__ void __launch_bounds__(kThreads) ssd_v1_chunk_backward(SsdBackwardArgs a) {
  DEV_EXTERN_SHARED(float, smem);
  const SsdDims& s = a.s;
  const int L = s.chunk, N = s.d_state, P = s.head_dim, ldN = N + 1, ldP = P + 1;
  float* dts = smem;
  float* acum = dts + L;
  float* Bs = acum + L;        // (L, N + 1)
  float* Cs = Bs + L * ldN;    // (L, N + 1)
  float* Xs = Cs + L * ldN;    // (L, P + 1)
  float* DYs = Xs + L * ldP;   // (L, P + 1)
  float* CBd = DYs + L * ldP;  // [j][i] = (C_j . B_i) e(j, i) for j >= i, else 0
  float* XDd = CBd + L * L;    // [i][j] = (x_i . dy_j) e(j, i) for i <= j, else 0
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, first = c * L;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  load_chunk_decay(s, a.dt, a.A[h], b, h, first, dts, acum);
  load_chunk_rows<float, true>(Bs, ldN, a.Bm, s, b, h, first);
  load_chunk_rows<float, true>(Cs, ldN, a.Cm, s, b, h, first);
  load_chunk_rows<float, false>(Xs, ldP, a.x, s, b, h, first);
  load_chunk_rows<float, false>(DYs, ldP, a.dy, s, b, h, first);
  __syncthreads();
  for (int idx = threadIdx.x; idx < L * L; idx += blockDim.x) {
    const int r = idx / L, q = idx % L;
    float cb = 0.f, xd = 0.f;
    if (r >= q) {  // CBd[r][q], r the later token
      for (int n = 0; n < N; ++n) cb = fmaf(Cs[r * ldN + n], Bs[q * ldN + n], cb);
      cb *= decay_between(acum[r], acum[q]);
    }
    if (r <= q) {  // XDd[r][q], q the later token
      for (int p = 0; p < P; ++p) xd = fmaf(Xs[r * ldP + p], DYs[q * ldP + p], xd);
      xd *= decay_between(acum[q], acum[r]);
    }
    CBd[idx] = cb;
    XDd[idx] = xd;
  }
  __syncthreads();
  const float* Hin = a.states + chunk_state_offset(s, b, h, c);
  const float* dHout = a.dstates + chunk_state_offset(s, b, h, c);
  const float D = a.D != nullptr ? a.D[h] : 0.f;
  for (int i = warp; i < L; i += kWarps) {
    const int t = first + i;
    const bool valid = t < s.seq;
    const float to_end = decay_between(acum[L - 1], acum[i]), from_start = expf(acum[i]), dti = dts[i];
    float part = 0.f;
    for (int p = lane; p < P; p += 32) {
      float u = 0.f, out = 0.f;
      for (int j = i; j < L; ++j) u = fmaf(CBd[j * L + i], DYs[j * ldP + p], u);
      for (int n = 0; n < N; ++n) out = fmaf(Bs[i * ldN + n], dHout[static_cast<size_t>(n) * P + p], out);
      u = fmaf(to_end, out, u);
      if (valid) a.dx[x_offset(s, b, t, h) + p] = fmaf(D, DYs[i * ldP + p], dti * u);
      part = fmaf(u, Xs[i * ldP + p], part);
    }
    const float direct = warp_sum(part);
    float cpart = 0.f;
    for (int n = lane; n < N; n += 32) {
      float v = 0.f, out = 0.f, dc = 0.f, in = 0.f;
      for (int j = i; j < L; ++j) v = fmaf(XDd[i * L + j], Cs[j * ldN + n], v);
      for (int p = 0; p < P; ++p) out = fmaf(dHout[static_cast<size_t>(n) * P + p], Xs[i * ldP + p], out);
      v = fmaf(to_end, out, v);
      for (int j = 0; j <= i; ++j) dc = fmaf(XDd[j * L + i] * dts[j], Bs[j * ldN + n], dc);
      for (int p = 0; p < P; ++p) in = fmaf(Hin[static_cast<size_t>(n) * P + p], DYs[i * ldP + p], in);
      dc = fmaf(from_start, in, dc);
      if (valid) {
        a.dB_head[head_bc_offset(s, b, t, h) + n] = dti * v;
        a.dC_head[head_bc_offset(s, b, t, h) + n] = dc;
      }
      cpart = fmaf(dc, Cs[i * ldN + n], cpart);
    }
    const float dlambda = warp_sum(cpart) - dti * direct;
    if (valid && lane == 0) {
      a.ddt_direct[dt_offset(s, b, t, h)] = direct;
      a.dlambda[dt_offset(s, b, t, h)] = dlambda;
    }
  }
}

// Block (head, batch): dl_t = sum_{k >= t} dlambda_k (a block scan over
// tiles of 256 tokens from the end), ddt_t = ddt_direct_t + A dl_t, and the
// (b, h) parts of dA = sum_t dt_t dl_t and dD = sum_{t,p} dy . x.
__global__ void __launch_bounds__(kThreads)
    ssd_v1_decay_backward(const float* dt, const float* A, const float* ddt_direct, const float* dlambda,
                          const float* x, const float* dy, float* ddt, float* dA_part, float* dD_part, SsdDims s) {
  __shared__ float scan[kThreads];
  __shared__ float red[2][kWarps];
  const int h = blockIdx.x, b = blockIdx.y, tid = threadIdx.x;
  const float Ah = A[h];
  float carry = 0.f, dA = 0.f, dD = 0.f;
  for (int end = s.seq; end > 0; end -= kThreads) {
    const int t = end - 1 - tid;  // thread k holds the k-th token back from `end`
    scan[tid] = t >= 0 ? dlambda[dt_offset(s, b, t, h)] : 0.f;
    __syncthreads();
    for (int off = 1; off < kThreads; off <<= 1) {
      const float add = tid >= off ? scan[tid - off] : 0.f;
      __syncthreads();
      scan[tid] += add;
      __syncthreads();
    }
    if (t >= 0) {
      const float dl = scan[tid] + carry;
      ddt[dt_offset(s, b, t, h)] = fmaf(Ah, dl, ddt_direct[dt_offset(s, b, t, h)]);
      dA = fmaf(dt[dt_offset(s, b, t, h)], dl, dA);
    }
    carry += scan[kThreads - 1];
    __syncthreads();
  }
  for (int idx = tid; idx < s.seq * s.head_dim; idx += kThreads) {
    const int t = idx / s.head_dim, p = idx % s.head_dim;
    const size_t o = x_offset(s, b, t, h) + p;
    dD = fmaf(dy[o], x[o], dD);
  }
  dA = warp_sum(dA);
  dD = warp_sum(dD);
  if (tid % 32 == 0) {
    red[0][tid / 32] = dA;
    red[1][tid / 32] = dD;
  }
  __syncthreads();
  if (tid == 0) {
    float sa = 0.f, sd = 0.f;
    for (int w = 0; w < kWarps; ++w) {
      sa += red[0][w];
      sd += red[1][w];
    }
    dA_part[static_cast<size_t>(b) * s.heads + h] = sa;
    dD_part[static_cast<size_t>(b) * s.heads + h] = sd;
  }
}

// out (B, T, G, N) = the sum of a (B, T, H, N) per-head tensor over each group's heads.
__global__ void ssd_group_sum(const float* head, float* out, SsdDims s) {
  const size_t total = static_cast<size_t>(s.batch) * s.seq * s.groups * s.d_state;
  const int R = s.heads / s.groups;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int n = static_cast<int>(idx % s.d_state);
    const size_t rest = idx / s.d_state;
    const int g = static_cast<int>(rest % s.groups);
    const size_t bt = rest / s.groups;
    float acc = 0.f;
    for (int r = 0; r < R; ++r) acc += head[(bt * s.heads + static_cast<size_t>(g) * R + r) * s.d_state + n];
    out[idx] = acc;
  }
}

// out[h] = sum_b part[b, h].
__global__ void ssd_batch_sum(const float* part, float* out, int batch, int heads) {
  const int h = blockIdx.x * blockDim.x + threadIdx.x;
  if (h >= heads) return;
  float acc = 0.f;
  for (int b = 0; b < batch; ++b) acc += part[static_cast<size_t>(b) * heads + h];
  out[h] = acc;
}

// Chunk rows of head h into an Op tile (64, ld), zero past the sequence,
// each value times scale(i) (1 by default).
template <typename T, bool kGroup, int WIDTH, typename Scale>
__device__ __forceinline__ void load_tc_rows(typename TcOperand<T>::Op* tile, int ld, const T* U, const SsdDims& s,
                                             int b, int h, int first, Scale scale) {
  for (int idx = threadIdx.x; idx < kTcChunk * WIDTH; idx += kThreads) {
    const int i = idx / WIDTH, k = idx % WIDTH, t = first + i;
    float v = 0.f;
    if (t < s.seq) v = to_float(U[(kGroup ? bc_offset(s, b, t, h) : x_offset(s, b, t, h)) + k]) * scale(i);
    tile[i * ld + k] = TcOperand<T>::make(v);
  }
}

// Chunk states on the tensor cores: S (N, P) = (w B)^T X, w_j = exp(Acum_last
// - Acum_j) dt_j; block (chunk, head, batch), each warp a set of 16x16 tiles
// stored straight to the workspace.
template <typename T, int N, int P>
__global__ void __launch_bounds__(kThreads) ssd_v2_chunk_state(SsdForwardArgs<T> a) {
  using Tc = TcOperand<T>;
  using Op = typename Tc::Op;
  using Lay = TcLayout<T, N, P>;
  constexpr int L = kTcChunk;
  DEV_EXTERN_SHARED(unsigned char, smem_bytes);
  float* dts = reinterpret_cast<float*>(smem_bytes);
  float* acum = dts + L;
  Op* Bw = reinterpret_cast<Op*>(smem_bytes + Lay::kStateB);
  Op* Xs = reinterpret_cast<Op*>(smem_bytes + Lay::kStateX);
  const SsdDims& s = a.s;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, first = c * L, warp = threadIdx.x / 32;
  if (warp == 0) chunk_decay_scan<L>(s, a.log_decay, a.dt, b, h, first, dts, acum);
  load_tc_rows<T, false, P>(Xs, Lay::kLdP, a.x, s, b, h, first, [](int) { return 1.f; });
  __syncthreads();
  const float last = acum[L - 1];
  load_tc_rows<T, true, N>(Bw, Lay::kLdN, a.Bm, s, b, h, first,
                           [&](int i) { return decay_between(last, acum[i]) * dts[i]; });
  if (threadIdx.x == 0) a.totals[total_offset(s, b, h, c)] = last;
  __syncthreads();
  float* out = a.states + chunk_state_offset(s, b, h, c);
  constexpr int kColTiles = P / 16, kTiles = (N / 16) * kColTiles;
  for (int tile = warp; tile < kTiles; tile += kWarps) {
    const int m0 = tile / kColTiles * 16, n0 = tile % kColTiles * 16;
    TcAccumulator<T> acc;
    wmma::fill_fragment(acc, 0.f);
    // A = Bw^T: element (n, j) at Bw[j * ld + n], column-major.
    warp_tile_product<T, wmma::col_major, wmma::row_major>(acc, Bw, Lay::kLdN, Xs, Lay::kLdP, m0, n0, L);
    wmma::store_matrix_sync(out + m0 * P + n0, acc, P, wmma::mem_row_major);
  }
}

// Chunk outputs on the tensor cores, block (chunk, head, batch):
//   scores = C B^T (lower-triangle tiles only), masked and weighted in place;
//   Y = scores X + (exp(Acum) C) H_c (accumulators held by the warps);
//   y = Y + D x.
template <typename T, int N, int P>
__global__ void __launch_bounds__(kThreads) ssd_v2_chunk_output(SsdForwardArgs<T> a) {
  using Tc = TcOperand<T>;
  using Op = typename Tc::Op;
  using Lay = TcLayout<T, N, P>;
  constexpr int L = kTcChunk;
  DEV_EXTERN_SHARED(unsigned char, smem_bytes);
  float* dts = reinterpret_cast<float*>(smem_bytes);
  float* acum = dts + L;
  Op* Cs = reinterpret_cast<Op*>(smem_bytes + Lay::kOutC);
  Op* Bs = reinterpret_cast<Op*>(smem_bytes + Lay::kOutB);
  Op* Xs = reinterpret_cast<Op*>(smem_bytes + Lay::kOutX);
  float* Gf = reinterpret_cast<float*>(smem_bytes + Lay::kOutGf);
  Op* G = reinterpret_cast<Op*>(smem_bytes + Lay::kOutG);
  Op* Ss = reinterpret_cast<Op*>(smem_bytes + Lay::kOutS);
  float* Ys = reinterpret_cast<float*>(smem_bytes + Lay::kOutS);  // after the last product
  const SsdDims& s = a.s;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, first = c * L, warp = threadIdx.x / 32;

  if (warp == 0) chunk_decay_scan<L>(s, a.log_decay, a.dt, b, h, first, dts, acum);
  const auto one = [](int) { return 1.f; };
  load_tc_rows<T, true, N>(Cs, Lay::kLdN, a.Cm, s, b, h, first, one);
  load_tc_rows<T, true, N>(Bs, Lay::kLdN, a.Bm, s, b, h, first, one);
  load_tc_rows<T, false, P>(Xs, Lay::kLdP, a.x, s, b, h, first, one);
  const float* S = a.states + chunk_state_offset(s, b, h, c);
  for (int e = threadIdx.x; e < N * P; e += kThreads) Ss[(e / P) * Lay::kLdP + e % P] = Tc::make(S[e]);
  __syncthreads();

  // Scores C B^T on the 10 lower-triangle tiles (the rest is masked anyway).
  for (int tile = warp; tile < 16; tile += kWarps) {
    const int tm = tile / 4, tn = tile % 4;
    if (tn > tm) continue;
    TcAccumulator<T> acc;
    wmma::fill_fragment(acc, 0.f);
    // B operand = B^T: element (n, j) at Bs[j * ld + n], column-major.
    warp_tile_product<T, wmma::row_major, wmma::col_major>(acc, Cs, Lay::kLdN, Bs, Lay::kLdN, tm * 16, tn * 16, N);
    wmma::store_matrix_sync(Gf + tm * 16 * Lay::kLdLf + tn * 16, acc, Lay::kLdLf, wmma::mem_row_major);
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < L * L; idx += kThreads) {
    const int i = idx / L, j = idx % L;
    const float g = j <= i ? Gf[i * Lay::kLdLf + j] * decay_between(acum[i], acum[j]) * dts[j] : 0.f;
    G[i * Lay::kLdL + j] = Tc::make(g);
  }
  for (int idx = threadIdx.x; idx < L * N; idx += kThreads) {  // C_i <- exp(Acum_i) C_i for the inter term
    const int i = idx / N, n = idx % N;
    Cs[i * Lay::kLdN + n] = Tc::make(to_float(Cs[i * Lay::kLdN + n]) * expf(acum[i]));
  }
  __syncthreads();

  constexpr int kColTiles = P / 16, kTiles = (L / 16) * kColTiles, kPerWarp = kTiles / kWarps;
  static_assert(kTiles % kWarps == 0, "output tiles spread evenly over the warps");
  TcAccumulator<T> acc[kPerWarp];
#pragma unroll
  for (int k = 0; k < kPerWarp; ++k) {
    const int tile = warp + k * kWarps, m0 = tile / kColTiles * 16, n0 = tile % kColTiles * 16;
    wmma::fill_fragment(acc[k], 0.f);
    // Intra: scores are zero right of the diagonal tile, so k stops there.
    warp_tile_product<T, wmma::row_major, wmma::row_major>(acc[k], G, Lay::kLdL, Xs, Lay::kLdP, m0, n0, m0 + 16);
    warp_tile_product<T, wmma::row_major, wmma::row_major>(acc[k], Cs, Lay::kLdN, Ss, Lay::kLdP, m0, n0, N);
  }
  write_outputs<T, T, N, P>(acc, Ys, Xs, a.D != nullptr ? a.D[h] : 0.f, a.y, s, b, h, first);
}

}  // namespace ssd_dev