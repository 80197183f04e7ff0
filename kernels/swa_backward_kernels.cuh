// Sliding-window attention backward kernels, flash-style, as templates over
// their tiles: the probabilities are recomputed from the saved log-sum-exp
// instead of stored. swa_backward.cu instantiates the tiles production runs;
// kernels/dev/swa_backward_dev.cu times the others against a reference.
//
// With z = scale * q.k + bias[t] - bias[s] the logits, P = softmax_s(z),
// dP = dO V^T and delta_t = sum_s P dP = <dO_t, O_t>:
//   dZ = P * (dP - delta)          dV = P^T dO
//   dQ = scale * dZ K              dK = scale * dZ^T Q
//   d bias[j] = sum_s dZ[j, s] - sum_t dZ[t, j]
// Each row of dZ sums to zero in exact arithmetic, but not in the kernel's:
// delta comes from the stored (bf16) output, so a row misses by about the
// output's rounding. GatedFWA's gate gradient is the reverse cumulative sum of
// d(bias), which would add those misses up over the sequence; so the dQ pass
// writes each row's sum (row_dz_sums) and the dK pass subtracts the column's from
// it: for every pair of tokens the same dZ enters once with each sign, and
// the cumulative sum keeps only the pairs that straddle the position.
//
// Three passes: delta (one warp per row), dQ (per query block, streaming key
// blocks, as the forward) and dK/dV/d(bias) (per key block, streaming the query
// blocks whose windows reach it). Separate dQ and dK/dV passes recompute P
// twice but need no atomics, so the result is deterministic.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "swa_device.cuh"
#include "swa_launch.h"

namespace bla::kernels::detail {

// Where the dQ pass leaves each query's sum of dZ when there is a bias
// gradient: behind delta in the same workspace (swa_launch.h).
__device__ __forceinline__ float* row_dz_sums(const SwaBackwardArgs& a) {
  return a.delta + static_cast<size_t>(a.shape.batch) * a.shape.heads * a.shape.seq;
}

// delta[b, h, t] = sum_d grad_out * out, one warp per (b, t, h) row.
template <typename T, int D>
__global__ void swa_backward_delta(SwaBackwardArgs a) {
  const SwaShape& sh = a.shape;
  const int lane = threadIdx.x % 32;
  const size_t row = static_cast<size_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const size_t rows = static_cast<size_t>(sh.batch) * sh.seq * sh.heads;
  if (row >= rows) return;
  const T* o = static_cast<const T*>(a.out) + row * D;
  const T* g = static_cast<const T*>(a.grad_out) + row * D;
  float sum = 0.f;
#pragma unroll
  for (int d = lane; d < D; d += 32) sum += to_float(o[d]) * to_float(g[d]);
  sum = warp_sum(sum);
  if (lane == 0) {
    const int h = static_cast<int>(row % sh.heads);
    const size_t bt = row / sh.heads;
    const int t = static_cast<int>(bt % sh.seq), b = static_cast<int>(bt / sh.seq);
    a.delta[stat_offset(sh, b, h, t)] = sum;
  }
}

// ---- SIMT: one warp per query (dQ) or per key (dK, dV) ---------------------

// The warp's own token: its rows of x (times x_scale) and y into shared rows
// (q and dO for the dQ pass, k and v for the dK/dV pass).
template <typename T, int D>
__device__ __forceinline__ void stage_own_rows(float* x_row, float* y_row, const T* x, const T* y, size_t offset,
                                               float x_scale, int lane) {
  for (int d = lane; d < D; d += 32) {
    x_row[d] = to_float(x[offset + d]) * x_scale;
    y_row[d] = to_float(y[offset + d]);
  }
  __syncwarp();
}

// One (query, key) pair from the other side's rows: x . u (the logit) and
// y . w (dP), x and y the warp's staged rows.
template <typename T, int D>
__device__ __forceinline__ void pair_dots(const float* x, const T* u, const float* y, const T* w, float& xu, float& yw) {
  xu = 0.f;
  yw = 0.f;
#pragma unroll 8
  for (int d = 0; d < D; ++d) {
    xu += x[d] * to_float(u[d]);
    yw += y[d] * to_float(w[d]);
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(kSimtWarps * 32) swa_backward_dq_simt(SwaBackwardArgs a) {
  constexpr int kPerLane = D / 32;
  __shared__ float q_shared[kSimtWarps][D];
  __shared__ float g_shared[kSimtWarps][D];
  const SwaShape& sh = a.shape;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t = blockIdx.x * kSimtWarps + warp;
  const int h = blockIdx.y, b = blockIdx.z;
  if (t >= sh.seq) return;
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const T* go = static_cast<const T*>(a.grad_out);
  const float logit_scale = sh.scale * kLog2e;
  stage_own_rows<T, D>(q_shared[warp], g_shared[warp], q, go, token_offset(sh, b, t, h), logit_scale, lane);
  const float bias_t = a.bias != nullptr ? a.bias[bias_offset(sh, b, t, h)] * kLog2e : 0.f;
  const float lse2 = a.lse[stat_offset(sh, b, h, t)] * kLog2e;
  const float delta = a.delta[stat_offset(sh, b, h, t)];

  float acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) acc[i] = 0.f;
  float row_dz = 0.f;
  const int first = max(0, t - sh.window + 1);
  for (int s0 = first; s0 <= t; s0 += 32) {
    const int s = s0 + lane;
    float dz = 0.f;
    if (s <= t) {
      const T* k_row = k + token_offset(sh, b, s, h);
      const T* v_row = v + token_offset(sh, b, s, h);
      float logit, dp;
      pair_dots<T, D>(q_shared[warp], k_row, g_shared[warp], v_row, logit, dp);
      if (a.bias != nullptr) logit += bias_t - a.bias[bias_offset(sh, b, s, h)] * kLog2e;
      dz = exp2f(logit - lse2) * (dp - delta);
    }
    row_dz += dz;
    const int count = min(32, t - s0 + 1);
    for (int j = 0; j < count; ++j) {
      const float dzj = __shfl_sync(kFullMask, dz, j);
      const T* k_row = k + token_offset(sh, b, s0 + j, h);
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) acc[i] += dzj * to_float(k_row[lane + 32 * i]);
    }
  }
  T* dq_row = static_cast<T*>(a.grad_q) + token_offset(sh, b, t, h);
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) dq_row[lane + 32 * i] = from_float<T>(acc[i] * sh.scale);
  row_dz = warp_sum(row_dz);
  if (lane == 0 && a.grad_bias != nullptr) row_dz_sums(a)[stat_offset(sh, b, h, t)] = row_dz;
}

template <typename T, int D>
__global__ void __launch_bounds__(kSimtWarps * 32) swa_backward_dkdv_simt(SwaBackwardArgs a) {
  constexpr int kPerLane = D / 32;
  __shared__ float k_shared[kSimtWarps][D];
  __shared__ float v_shared[kSimtWarps][D];
  const SwaShape& sh = a.shape;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int s = blockIdx.x * kSimtWarps + warp;
  const int h = blockIdx.y, b = blockIdx.z;
  if (s >= sh.seq) return;
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const T* go = static_cast<const T*>(a.grad_out);
  const float logit_scale = sh.scale * kLog2e;
  stage_own_rows<T, D>(k_shared[warp], v_shared[warp], k, v, token_offset(sh, b, s, h), logit_scale, lane);
  const float bias_s = a.bias != nullptr ? a.bias[bias_offset(sh, b, s, h)] * kLog2e : 0.f;

  float dk[kPerLane], dv[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) dk[i] = dv[i] = 0.f;
  float bias_grad = 0.f;
  const int last = min(sh.seq - 1, s + sh.window - 1);
  for (int t0 = s; t0 <= last; t0 += 32) {
    const int t = t0 + lane;
    float p = 0.f, dz = 0.f;
    if (t <= last) {
      const T* q_row = q + token_offset(sh, b, t, h);
      const T* g_row = go + token_offset(sh, b, t, h);
      float logit, dp;
      pair_dots<T, D>(k_shared[warp], q_row, v_shared[warp], g_row, logit, dp);
      if (a.bias != nullptr) logit += a.bias[bias_offset(sh, b, t, h)] * kLog2e - bias_s;
      p = exp2f(logit - a.lse[stat_offset(sh, b, h, t)] * kLog2e);
      dz = p * (dp - a.delta[stat_offset(sh, b, h, t)]);
    }
    bias_grad += dz;
    const int count = min(32, last - t0 + 1);
    for (int j = 0; j < count; ++j) {
      const float pj = __shfl_sync(kFullMask, p, j);
      const float dzj = __shfl_sync(kFullMask, dz, j);
      const T* q_row = q + token_offset(sh, b, t0 + j, h);
      const T* g_row = go + token_offset(sh, b, t0 + j, h);
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        dv[i] += pj * to_float(g_row[lane + 32 * i]);
        dk[i] += dzj * to_float(q_row[lane + 32 * i]);
      }
    }
  }
  T* dk_row = static_cast<T*>(a.grad_k) + token_offset(sh, b, s, h);
  T* dv_row = static_cast<T*>(a.grad_v) + token_offset(sh, b, s, h);
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    dk_row[lane + 32 * i] = from_float<T>(dk[i] * sh.scale);
    dv_row[lane + 32 * i] = from_float<T>(dv[i]);
  }
  bias_grad = warp_sum(bias_grad);
  if (lane == 0 && a.grad_bias != nullptr) {
    a.grad_bias[bias_offset(sh, b, s, h)] = row_dz_sums(a)[stat_offset(sh, b, h, s)] - bias_grad;
  }
}

// ---- tensor cores ------------------------------------------------------------

template <int D, int WARPS, int MT, int BN>
constexpr size_t dq_tc_smem_bytes() {
  return sizeof(__nv_bfloat16) * (2 * 16 * MT * WARPS + 4 * BN) * kRowStride<D> + sizeof(float) * 2 * BN;
}

// dQ for 16*MT*WARPS queries: the forward's loop over key blocks, with
// dP = dO V^T beside S = Q K^T and dQ += dZ K in place of O += P V. Each warp
// owns MT tiles of 16 queries (as in the forward).
// kRowSums: also write each query's sum of dZ (row_dz_sums), for the bias
// gradient only: the sums cost registers the plain pass does not spend.
template <int D, int WARPS, int MT, int BN, int MIN_BLOCKS, bool kRowSums = false>
__global__ void __launch_bounds__(WARPS * 32, MIN_BLOCKS) swa_backward_dq_tc(SwaBackwardArgs a) {
  constexpr int BM = 16 * MT * WARPS, kThreads = WARPS * 32, LD = kRowStride<D>;
  DEV_EXTERN_SHARED_ALIGNED(unsigned char, smem, 16);
  __nv_bfloat16* q_tile = reinterpret_cast<__nv_bfloat16*>(smem);  // [BM][LD]
  __nv_bfloat16* g_tile = q_tile + BM * LD;                         // [BM][LD] grad_out
  __nv_bfloat16* k_tile = g_tile + BM * LD;                         // [2][BN][LD]
  __nv_bfloat16* v_tile = k_tile + 2 * BN * LD;                     // [2][BN][LD]
  float* key_bias = reinterpret_cast<float*>(v_tile + 2 * BN * LD);  // [2][BN], times log2(e)

  const SwaShape& sh = a.shape;
  const int T = sh.seq, W = sh.window;
  const int m0 = (gridDim.x - 1 - blockIdx.x) * BM;  // heaviest (latest) query blocks first
  const int h = blockIdx.y, b = blockIdx.z;
  const size_t row_stride = static_cast<size_t>(sh.heads) * D;
  const size_t head0 = token_offset(sh, b, 0, h);
  const __nv_bfloat16* q_head = static_cast<const __nv_bfloat16*>(a.q) + head0;
  const __nv_bfloat16* g_head = static_cast<const __nv_bfloat16*>(a.grad_out) + head0;
  const KeyBlockStream<D, BM, BN, kThreads> keys(sh, a.k, a.v, a.bias, m0, b, h, k_tile, v_tile, key_bias);
  load_tile_async<D, BM, kThreads>(q_tile, q_head, row_stride, m0, T);
  load_tile_async<D, BM, kThreads>(g_tile, g_head, row_stride, m0, T);
  keys.load(keys.first, 0);
  cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane >> 2, quad = lane & 3;
  int row[MT][2];
  float query_bias[MT][2], lse2[MT][2], delta[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = m0 + (warp * MT + mt) * 16 + group + 8 * i;
      row[mt][i] = r;
      const bool valid = r < T;
      lse2[mt][i] = valid ? a.lse[stat_offset(sh, b, h, r)] * kLog2e : 0.f;
      delta[mt][i] = valid ? a.delta[stat_offset(sh, b, h, r)] : 0.f;
      query_bias[mt][i] = (valid && a.bias != nullptr) ? a.bias[bias_offset(sh, b, r, h)] * kLog2e : 0.f;
    }
  const float logit_scale = sh.scale * kLog2e;

  uint32_t q_frag[MT][D / 16][4], g_frag[MT][D / 16][4];
  float dq_acc[MT][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < D / 8; ++i) dq_acc[mt][i][0] = dq_acc[mt][i][1] = dq_acc[mt][i][2] = dq_acc[mt][i][3] = 0.f;
  float row_dz[MT][2] = {};  // with kRowSums: this lane's part of each of its rows' sum of dZ

  for (int block = keys.first; block <= keys.last; ++block) {
    const int stage = keys.arrive(block);
    if (block == keys.first) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int ks = 0; ks < D / 16; ++ks) {
          const int offset = ((warp * MT + mt) * 16 + (lane & 15)) * LD + ks * 16 + (lane >> 4) * 8;
          ldmatrix_x4(q_frag[mt][ks], q_tile + offset);
          ldmatrix_x4(g_frag[mt][ks], g_tile + offset);
        }
    }

    const __nv_bfloat16* k_stage = k_tile + stage * BN * LD;
    const __nv_bfloat16* v_stage = v_tile + stage * BN * LD;
    float s_acc[MT][BN / 8][4], dp_acc[MT][BN / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < BN / 8; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) s_acc[mt][i][e] = dp_acc[mt][i][e] = 0.f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        const int offset = (np * 16 + (lane >> 4) * 8 + (lane & 7)) * LD + ks * 16 + ((lane >> 3) & 1) * 8;
        uint32_t kf[4], vf[4];
        ldmatrix_x4(kf, k_stage + offset);
        ldmatrix_x4(vf, v_stage + offset);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_16816(s_acc[mt][2 * np], q_frag[mt][ks], kf[0], kf[1]);
          mma_16816(s_acc[mt][2 * np + 1], q_frag[mt][ks], kf[2], kf[3]);
          mma_16816(dp_acc[mt][2 * np], g_frag[mt][ks], vf[0], vf[1]);
          mma_16816(dp_acc[mt][2 * np + 1], g_frag[mt][ks], vf[2], vf[3]);
        }
      }
    }

    const int key0 = block * BN;
    const bool all_visible = key0 + BN - 1 <= m0 && key0 >= m0 + BM - W;
    const float* bias_stage = key_bias + stage * BN;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = nt * 8 + quad * 2 + (e & 1);
          float x = s_acc[mt][nt][e] * logit_scale;
          if (a.bias != nullptr) x += query_bias[mt][e >> 1] - bias_stage[col];
          float p = exp2f(x - lse2[mt][e >> 1]);
          if (!all_visible && !in_window(row[mt][e >> 1], key0 + col, W)) p = 0.f;
          s_acc[mt][nt][e] = p * (dp_acc[mt][nt][e] - delta[mt][e >> 1]);  // dZ
          if constexpr (kRowSums) row_dz[mt][e >> 1] += s_acc[mt][nt][e];
        }
      }

    accumulate_times_tile<D, MT, BN>(dq_acc, s_acc, k_stage, lane);  // dQ += dZ K
    __syncthreads();
  }

  __nv_bfloat16* dq_head = static_cast<__nv_bfloat16*>(a.grad_q) + head0;
  if constexpr (kRowSums) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < 2; ++i) {  // a row's four lanes (one quad) hold its columns
        row_dz[mt][i] += __shfl_xor_sync(kFullMask, row_dz[mt][i], 1);
        row_dz[mt][i] += __shfl_xor_sync(kFullMask, row_dz[mt][i], 2);
        if (quad == 0 && row[mt][i] < T) row_dz_sums(a)[stat_offset(sh, b, h, row[mt][i])] = row_dz[mt][i];
      }
  }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      const int col = dt * 8 + quad * 2;
#pragma unroll
      for (int i = 0; i < 2; ++i)
        if (row[mt][i] < T)
          *reinterpret_cast<__nv_bfloat162*>(dq_head + row[mt][i] * row_stride + col) =
              __floats2bfloat162_rn(dq_acc[mt][dt][2 * i] * sh.scale, dq_acc[mt][dt][2 * i + 1] * sh.scale);
    }
}

template <int D, int WARPS, int MT, int BM>
constexpr size_t dkdv_tc_smem_bytes() {
  return sizeof(__nv_bfloat16) * (2 * 16 * MT * WARPS + 4 * BM) * kRowStride<D> + sizeof(float) * 3 * 2 * BM;
}

// dK, dV, d(bias) for 16*MT*WARPS keys, streaming the query blocks of BM rows
// that can see them (t in [s, s + W - 1]). Each warp owns MT tiles of 16 keys
// and works on transposed scores S^T = K Q^T, so P^T and dZ^T are already A
// fragments for dV += P^T dO and dK += dZ^T Q.
template <int D, int WARPS, int MT, int BM>
__global__ void __launch_bounds__(WARPS * 32) swa_backward_dkdv_tc(SwaBackwardArgs a) {
  constexpr int BN = 16 * MT * WARPS, kThreads = WARPS * 32, LD = kRowStride<D>;
  DEV_EXTERN_SHARED_ALIGNED(unsigned char, smem, 16);
  __nv_bfloat16* k_tile = reinterpret_cast<__nv_bfloat16*>(smem);  // [BN][LD]
  __nv_bfloat16* v_tile = k_tile + BN * LD;                         // [BN][LD]
  __nv_bfloat16* q_tile = v_tile + BN * LD;                         // [2][BM][LD]
  __nv_bfloat16* g_tile = q_tile + 2 * BM * LD;                     // [2][BM][LD] grad_out
  float* lse_tile = reinterpret_cast<float*>(g_tile + 2 * BM * LD);  // [2][BM], times log2(e)
  float* delta_tile = lse_tile + 2 * BM;                            // [2][BM]
  float* query_bias = delta_tile + 2 * BM;                          // [2][BM], times log2(e)

  const SwaShape& sh = a.shape;
  const int T = sh.seq, W = sh.window;
  const int n0 = blockIdx.x * BN;
  const int h = blockIdx.y, b = blockIdx.z;
  const size_t row_stride = static_cast<size_t>(sh.heads) * D;
  const size_t head0 = token_offset(sh, b, 0, h);
  const __nv_bfloat16* q_head = static_cast<const __nv_bfloat16*>(a.q) + head0;
  const __nv_bfloat16* k_head = static_cast<const __nv_bfloat16*>(a.k) + head0;
  const __nv_bfloat16* v_head = static_cast<const __nv_bfloat16*>(a.v) + head0;
  const __nv_bfloat16* g_head = static_cast<const __nv_bfloat16*>(a.grad_out) + head0;

  const int query_first = n0;
  const int query_last = min(T - 1, n0 + BN - 1 + W - 1);
  const int block_first = query_first / BM, block_last = query_last / BM;

  auto load_queries = [&](int block, int stage) {
    load_tile_async<D, BM, kThreads>(q_tile + stage * BM * LD, q_head, row_stride, block * BM, T);
    load_tile_async<D, BM, kThreads>(g_tile + stage * BM * LD, g_head, row_stride, block * BM, T);
    for (int i = threadIdx.x; i < BM; i += kThreads) {
      const int t = block * BM + i;
      const bool valid = t < T;
      lse_tile[stage * BM + i] = valid ? a.lse[stat_offset(sh, b, h, t)] * kLog2e : 0.f;
      delta_tile[stage * BM + i] = valid ? a.delta[stat_offset(sh, b, h, t)] : 0.f;
      query_bias[stage * BM + i] = (valid && a.bias != nullptr) ? a.bias[bias_offset(sh, b, t, h)] * kLog2e : 0.f;
    }
  };
  load_tile_async<D, BN, kThreads>(k_tile, k_head, row_stride, n0, T);
  load_tile_async<D, BN, kThreads>(v_tile, v_head, row_stride, n0, T);
  load_queries(block_first, 0);
  cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane >> 2, quad = lane & 3;
  int key[MT][2];  // this lane's key rows
  float key_bias[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      key[mt][i] = n0 + (warp * MT + mt) * 16 + group + 8 * i;
      key_bias[mt][i] =
          (a.bias != nullptr && key[mt][i] < T) ? a.bias[bias_offset(sh, b, key[mt][i], h)] * kLog2e : 0.f;
    }
  const float logit_scale = sh.scale * kLog2e;

  float dk_acc[MT][D / 8][4], dv_acc[MT][D / 8][4];
  float bias_grad[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) dk_acc[mt][i][e] = dv_acc[mt][i][e] = 0.f;
    bias_grad[mt][0] = bias_grad[mt][1] = 0.f;
  }

  for (int block = block_first; block <= block_last; ++block) {
    const int stage = (block - block_first) & 1;
    if (block < block_last) {
      load_queries(block + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    const __nv_bfloat16* q_stage = q_tile + stage * BM * LD;
    const __nv_bfloat16* g_stage = g_tile + stage * BM * LD;
    float st[MT][BM / 8][4], dpt[MT][BM / 8][4];  // S^T and dP^T: rows keys, columns queries
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < BM / 8; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) st[mt][i][e] = dpt[mt][i][e] = 0.f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      uint32_t kf[MT][4], vf[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int a_offset = ((warp * MT + mt) * 16 + (lane & 15)) * LD + ks * 16 + (lane >> 4) * 8;
        ldmatrix_x4(kf[mt], k_tile + a_offset);
        ldmatrix_x4(vf[mt], v_tile + a_offset);
      }
#pragma unroll
      for (int np = 0; np < BM / 16; ++np) {
        const int b_offset = (np * 16 + (lane >> 4) * 8 + (lane & 7)) * LD + ks * 16 + ((lane >> 3) & 1) * 8;
        uint32_t qf[4], gf[4];
        ldmatrix_x4(qf, q_stage + b_offset);
        ldmatrix_x4(gf, g_stage + b_offset);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_16816(st[mt][2 * np], kf[mt], qf[0], qf[1]);
          mma_16816(st[mt][2 * np + 1], kf[mt], qf[2], qf[3]);
          mma_16816(dpt[mt][2 * np], vf[mt], gf[0], gf[1]);
          mma_16816(dpt[mt][2 * np + 1], vf[mt], gf[2], gf[3]);
        }
      }
    }

    const int q0 = block * BM;
    const bool all_visible = n0 + BN - 1 <= q0 && q0 + BM - 1 - n0 < W && q0 + BM <= T;
    const float* lse_stage = lse_tile + stage * BM;
    const float* delta_stage = delta_tile + stage * BM;
    const float* qbias_stage = query_bias + stage * BM;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < BM / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = nt * 8 + quad * 2 + (e & 1);
          const int t = q0 + col;
          const float x = st[mt][nt][e] * logit_scale + qbias_stage[col] - key_bias[mt][e >> 1];
          float p = exp2f(x - lse_stage[col]);
          if (!all_visible && !(t < T && in_window(t, key[mt][e >> 1], W))) p = 0.f;
          const float dz = p * (dpt[mt][nt][e] - delta_stage[col]);
          st[mt][nt][e] = p;
          dpt[mt][nt][e] = dz;
          bias_grad[mt][e >> 1] += dz;
        }
      }

#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) {
      uint32_t p_frag[MT][4], dz_frag[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        p_frag[mt][0] = pack_bf16(st[mt][2 * kk][0], st[mt][2 * kk][1]);
        p_frag[mt][1] = pack_bf16(st[mt][2 * kk][2], st[mt][2 * kk][3]);
        p_frag[mt][2] = pack_bf16(st[mt][2 * kk + 1][0], st[mt][2 * kk + 1][1]);
        p_frag[mt][3] = pack_bf16(st[mt][2 * kk + 1][2], st[mt][2 * kk + 1][3]);
        dz_frag[mt][0] = pack_bf16(dpt[mt][2 * kk][0], dpt[mt][2 * kk][1]);
        dz_frag[mt][1] = pack_bf16(dpt[mt][2 * kk][2], dpt[mt][2 * kk][3]);
        dz_frag[mt][2] = pack_bf16(dpt[mt][2 * kk + 1][0], dpt[mt][2 * kk + 1][1]);
        dz_frag[mt][3] = pack_bf16(dpt[mt][2 * kk + 1][2], dpt[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        const int offset = (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LD + dp * 16 + (lane >> 4) * 8;
        uint32_t gf[4], qf[4];
        ldmatrix_x4_trans(gf, g_stage + offset);
        ldmatrix_x4_trans(qf, q_stage + offset);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_16816(dv_acc[mt][2 * dp], p_frag[mt], gf[0], gf[1]);
          mma_16816(dv_acc[mt][2 * dp + 1], p_frag[mt], gf[2], gf[3]);
          mma_16816(dk_acc[mt][2 * dp], dz_frag[mt], qf[0], qf[1]);
          mma_16816(dk_acc[mt][2 * dp + 1], dz_frag[mt], qf[2], qf[3]);
        }
      }
    }
    __syncthreads();
  }

  __nv_bfloat16* dk_head = static_cast<__nv_bfloat16*>(a.grad_k) + head0;
  __nv_bfloat16* dv_head = static_cast<__nv_bfloat16*>(a.grad_v) + head0;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      bias_grad[mt][i] += __shfl_xor_sync(kFullMask, bias_grad[mt][i], 1);
      bias_grad[mt][i] += __shfl_xor_sync(kFullMask, bias_grad[mt][i], 2);
      if (quad == 0 && a.grad_bias != nullptr && key[mt][i] < T) {
        const float row = row_dz_sums(a)[stat_offset(sh, b, h, key[mt][i])];
        a.grad_bias[bias_offset(sh, b, key[mt][i], h)] = row - bias_grad[mt][i];
      }
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      const int col = dt * 8 + quad * 2;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        if (key[mt][i] >= T) continue;
        *reinterpret_cast<__nv_bfloat162*>(dk_head + key[mt][i] * row_stride + col) =
            __floats2bfloat162_rn(dk_acc[mt][dt][2 * i] * sh.scale, dk_acc[mt][dt][2 * i + 1] * sh.scale);
        *reinterpret_cast<__nv_bfloat162*>(dv_head + key[mt][i] * row_stride + col) =
            __floats2bfloat162_rn(dv_acc[mt][dt][2 * i], dv_acc[mt][dt][2 * i + 1]);
      }
    }
  }
}

// ---- launch ----------------------------------------------------------------------

template <typename T, int D>
cudaError_t launch_backward_delta(const SwaBackwardArgs& a, cudaStream_t stream) {
  const size_t rows = static_cast<size_t>(a.shape.batch) * a.shape.seq * a.shape.heads;
  constexpr int kRowsPerBlock = 8;
  const auto blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  DEV_LAUNCH_ON(blocks, kRowsPerBlock * 32, 0, stream, swa_backward_delta<T, D>)(a);
  return cudaGetLastError();
}

template <typename T, int D>
cudaError_t launch_backward_simt(const SwaBackwardArgs& a, cudaStream_t stream) {
  cudaError_t err = launch_backward_delta<T, D>(a, stream);
  if (err != cudaSuccess) return err;
  const dim3 grid((a.shape.seq + kSimtWarps - 1) / kSimtWarps, a.shape.heads, a.shape.batch);
  DEV_LAUNCH_ON(grid, kSimtWarps * 32, 0, stream, swa_backward_dq_simt<T, D>)(a);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  DEV_LAUNCH_ON(grid, kSimtWarps * 32, 0, stream, swa_backward_dkdv_simt<T, D>)(a);
  return cudaGetLastError();
}

// Tiles <head dim; dQ warps, 16-row tiles per warp, key block; dK/dV warps,
// tiles per warp, query block; dQ min blocks per SM>, sized so the
// accumulators stay in registers.
template <int D, int DQ_WARPS, int DQ_MT, int DQ_BN, int KV_WARPS, int KV_MT, int KV_BM, int DQ_MIN_BLOCKS = 0>
cudaError_t launch_backward_tc(const SwaBackwardArgs& a, cudaStream_t stream) {
  cudaError_t err = launch_backward_delta<__nv_bfloat16, D>(a, stream);
  if (err != cudaSuccess) return err;

  constexpr size_t dq_smem = dq_tc_smem_bytes<D, DQ_WARPS, DQ_MT, DQ_BN>();
  auto dq_kernel = a.grad_bias != nullptr ? swa_backward_dq_tc<D, DQ_WARPS, DQ_MT, DQ_BN, DQ_MIN_BLOCKS, true>
                                           : swa_backward_dq_tc<D, DQ_WARPS, DQ_MT, DQ_BN, DQ_MIN_BLOCKS, false>;
  err = cudaFuncSetAttribute(dq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(dq_smem));
  if (err != cudaSuccess) return err;
  constexpr int kDqRows = 16 * DQ_MT * DQ_WARPS;
  const dim3 dq_grid((a.shape.seq + kDqRows - 1) / kDqRows, a.shape.heads, a.shape.batch);
  DEV_LAUNCH_ON(dq_grid, DQ_WARPS * 32, dq_smem, stream, dq_kernel)(a);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;

  constexpr size_t kv_smem = dkdv_tc_smem_bytes<D, KV_WARPS, KV_MT, KV_BM>();
  auto kv_kernel = swa_backward_dkdv_tc<D, KV_WARPS, KV_MT, KV_BM>;
  err = cudaFuncSetAttribute(kv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kv_smem));
  if (err != cudaSuccess) return err;
  constexpr int kKvRows = 16 * KV_MT * KV_WARPS;
  const dim3 kv_grid((a.shape.seq + kKvRows - 1) / kKvRows, a.shape.heads, a.shape.batch);
  DEV_LAUNCH_ON(kv_grid, KV_WARPS * 32, kv_smem, stream, kv_kernel)(a);
  return cudaGetLastError();
}

}  // namespace bla::kernels::detail
