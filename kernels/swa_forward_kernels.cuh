// Sliding-window attention forward kernels (docs/bla.md, "N = W": SWA is BLA
// with N = W), as templates over their tiles. swa_forward.cu instantiates the
// tiles production runs; kernels/dev/swa_forward_dev.cu times the others
// against a reference.
//
// Two kernel families compute the same thing:
// - swa_forward_simt: one warp per query, keys in groups of 32 (one per lane),
//   online softmax. Plain float arithmetic, any supported dtype: the simple
//   version that is easy to trust, and the float32 path.
// - swa_forward_tc: flash-style tiles on the tensor cores (mma.sync bf16,
//   fp32 accumulation). A block of WARPS warps owns 16*WARPS queries; each warp
//   owns 16 of them and keeps Q, the running max/sum and O in registers. Key
//   and value blocks of BN rows stream through shared memory, double-buffered
//   with cp.async; blocks wholly outside every query's window are never
//   visited, and the mask is evaluated only on blocks that straddle an edge.
// Both write lse = log(sum_s exp(logit)) per query (natural log) for the
// backward pass. Logits are handled in base 2 (scale * log2(e) folded in) so
// each probability costs one exp2.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "swa_device.cuh"
#include "swa_launch.h"

namespace bla::kernels::detail {

template <typename T, int D>
__global__ void __launch_bounds__(kSimtWarps * 32) swa_forward_simt(SwaForwardArgs a) {
  constexpr int kPerLane = D / 32;
  __shared__ float q_shared[kSimtWarps][D];
  const SwaShape& sh = a.shape;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t = blockIdx.x * kSimtWarps + warp;
  const int h = blockIdx.y, b = blockIdx.z;
  if (t >= sh.seq) return;

  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const float logit_scale = sh.scale * kLog2e;
  const T* q_row = q + token_offset(sh, b, t, h);
  for (int d = lane; d < D; d += 32) q_shared[warp][d] = to_float(q_row[d]) * logit_scale;
  __syncwarp();
  const float bias_t = a.bias != nullptr ? a.bias[bias_offset(sh, b, t, h)] * kLog2e : 0.f;

  float row_max = -INFINITY, row_sum = 0.f;
  float acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) acc[i] = 0.f;

  const int first = max(0, t - sh.window + 1);
  for (int s0 = first; s0 <= t; s0 += 32) {
    const int s = s0 + lane;
    float logit = -INFINITY;
    if (s <= t) {
      const T* k_row = k + token_offset(sh, b, s, h);
      float dot = 0.f;
#pragma unroll 8
      for (int d = 0; d < D; ++d) dot += q_shared[warp][d] * to_float(k_row[d]);
      logit = dot;
      if (a.bias != nullptr) logit += bias_t - a.bias[bias_offset(sh, b, s, h)] * kLog2e;
    }
    // Lane 0's key s0 <= t is always visible, so the group maximum is finite.
    const float new_max = fmaxf(row_max, warp_max(logit));
    const float p = exp2f(logit - new_max);
    const float rescale = exp2f(row_max - new_max);
    row_sum = row_sum * rescale + warp_sum(p);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[i] *= rescale;
    const int count = min(32, t - s0 + 1);
    for (int j = 0; j < count; ++j) {
      const float pj = __shfl_sync(kFullMask, p, j);
      const T* v_row = v + token_offset(sh, b, s0 + j, h);
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) acc[i] += pj * to_float(v_row[lane + 32 * i]);
    }
    row_max = new_max;
  }

  T* out_row = static_cast<T*>(a.out) + token_offset(sh, b, t, h);
  const float inv_sum = 1.f / row_sum;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) out_row[lane + 32 * i] = from_float<T>(acc[i] * inv_sum);
  if (lane == 0) a.lse[stat_offset(sh, b, h, t)] = (row_max + log2f(row_sum)) * kLn2;
}

template <int D, int WARPS, int MT, int BN>
constexpr size_t forward_tc_smem_bytes() {
  return sizeof(__nv_bfloat16) * (16 * MT * WARPS + 4 * BN) * kRowStride<D> + sizeof(float) * 2 * BN;
}

// WARPS warps, each owning MT tiles of 16 queries: every K or V fragment read
// from shared memory feeds MT matrix products, so MT = 2 halves the
// shared-memory traffic per FLOP; it also needs ~250 registers, and on the
// H100 it measured slower than MT = 1 (docs/performance.md). MIN_BLOCKS = 0
// leaves the register budget to the compiler.
template <int D, int WARPS, int MT, int BN, int MIN_BLOCKS>
__global__ void __launch_bounds__(WARPS * 32, MIN_BLOCKS) swa_forward_tc(SwaForwardArgs a) {
  constexpr int BM = 16 * MT * WARPS, kThreads = WARPS * 32, LD = kRowStride<D>;
  static_assert(D % 16 == 0 && BN % 16 == 0, "tile shapes");
  DEV_EXTERN_SHARED_ALIGNED(unsigned char, smem, 16);
  __nv_bfloat16* q_tile = reinterpret_cast<__nv_bfloat16*>(smem);  // [BM][LD]
  __nv_bfloat16* k_tile = q_tile + BM * LD;                         // [2][BN][LD]
  __nv_bfloat16* v_tile = k_tile + 2 * BN * LD;                     // [2][BN][LD]
  float* key_bias = reinterpret_cast<float*>(v_tile + 2 * BN * LD);  // [2][BN], times log2(e)

  const SwaShape& sh = a.shape;
  const int T = sh.seq, W = sh.window;
  // Causal work grows with the query index: start the heaviest blocks first.
  const int m0 = (gridDim.x - 1 - blockIdx.x) * BM;
  const int h = blockIdx.y, b = blockIdx.z;
  const size_t row_stride = static_cast<size_t>(sh.heads) * D;
  const size_t head0 = token_offset(sh, b, 0, h);
  const __nv_bfloat16* q_head = static_cast<const __nv_bfloat16*>(a.q) + head0;
  const KeyBlockStream<D, BM, BN, kThreads> keys(sh, a.k, a.v, a.bias, m0, b, h, k_tile, v_tile, key_bias);

  load_tile_async<D, BM, kThreads>(q_tile, q_head, row_stride, m0, T);
  keys.load(keys.first, 0);
  cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane >> 2, quad = lane & 3;
  // This lane's query rows: row[mt][i] = first row of the warp + 16 mt + group + 8 i.
  int row[MT][2];
  float query_bias[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      row[mt][i] = m0 + (warp * MT + mt) * 16 + group + 8 * i;
      query_bias[mt][i] =
          (a.bias != nullptr && row[mt][i] < T) ? a.bias[bias_offset(sh, b, row[mt][i], h)] * kLog2e : 0.f;
    }
  const float logit_scale = sh.scale * kLog2e;

  uint32_t q_frag[MT][D / 16][4];
  float o_acc[MT][D / 8][4];
  float row_max[MT][2], row_sum[MT][2];  // row_sum: this lane's share; the quad is summed at the end
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o_acc[mt][i][0] = o_acc[mt][i][1] = o_acc[mt][i][2] = o_acc[mt][i][3] = 0.f;
    row_max[mt][0] = row_max[mt][1] = -INFINITY;
    row_sum[mt][0] = row_sum[mt][1] = 0.f;
  }

  for (int block = keys.first; block <= keys.last; ++block) {
    const int stage = keys.arrive(block);
    if (block == keys.first) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int ks = 0; ks < D / 16; ++ks)
          ldmatrix_x4(q_frag[mt][ks], q_tile + ((warp * MT + mt) * 16 + (lane & 15)) * LD + ks * 16 + (lane >> 4) * 8);
    }

    // S = Q K^T for this warp's queries and the block's BN keys.
    const __nv_bfloat16* k_stage = k_tile + stage * BN * LD;
    float s_acc[MT][BN / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) s_acc[mt][i][0] = s_acc[mt][i][1] = s_acc[mt][i][2] = s_acc[mt][i][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        uint32_t kf[4];
        ldmatrix_x4(kf, k_stage + (np * 16 + (lane >> 4) * 8 + (lane & 7)) * LD + ks * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_16816(s_acc[mt][2 * np], q_frag[mt][ks], kf[0], kf[1]);
          mma_16816(s_acc[mt][2 * np + 1], q_frag[mt][ks], kf[2], kf[3]);
        }
      }
    }

    // Logits in base 2, masked where the block straddles a window edge.
    const int key0 = block * BN;
    const bool all_visible = key0 + BN - 1 <= m0 && key0 >= m0 + BM - W;
    const float* bias_stage = key_bias + stage * BN;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = nt * 8 + quad * 2 + (e & 1);
          float x = s_acc[mt][nt][e] * logit_scale;
          if (a.bias != nullptr) x += query_bias[mt][e >> 1] - bias_stage[col];
          if (!all_visible && !in_window(row[mt][e >> 1], key0 + col, W)) x = -INFINITY;
          s_acc[mt][nt][e] = x;
        }
      }

      // Online softmax: new running max, rescale the old sum and output.
      float new_max[2] = {row_max[mt][0], row_max[mt][1]};
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        new_max[0] = fmaxf(new_max[0], fmaxf(s_acc[mt][nt][0], s_acc[mt][nt][1]));
        new_max[1] = fmaxf(new_max[1], fmaxf(s_acc[mt][nt][2], s_acc[mt][nt][3]));
      }
      float rescale[2], shift[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        new_max[i] = fmaxf(new_max[i], __shfl_xor_sync(kFullMask, new_max[i], 1));
        new_max[i] = fmaxf(new_max[i], __shfl_xor_sync(kFullMask, new_max[i], 2));
        // A row may see no key in this block yet (-inf): subtract 0 instead.
        shift[i] = new_max[i] == -INFINITY ? 0.f : new_max[i];
        rescale[i] = exp2f(row_max[mt][i] - shift[i]);
        row_max[mt][i] = new_max[i];
      }
      float block_sum[2] = {0.f, 0.f};
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        s_acc[mt][nt][0] = exp2f(s_acc[mt][nt][0] - shift[0]);
        s_acc[mt][nt][1] = exp2f(s_acc[mt][nt][1] - shift[0]);
        s_acc[mt][nt][2] = exp2f(s_acc[mt][nt][2] - shift[1]);
        s_acc[mt][nt][3] = exp2f(s_acc[mt][nt][3] - shift[1]);
        block_sum[0] += s_acc[mt][nt][0] + s_acc[mt][nt][1];
        block_sum[1] += s_acc[mt][nt][2] + s_acc[mt][nt][3];
      }
      row_sum[mt][0] = row_sum[mt][0] * rescale[0] + block_sum[0];
      row_sum[mt][1] = row_sum[mt][1] * rescale[1] + block_sum[1];
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        o_acc[mt][i][0] *= rescale[0];
        o_acc[mt][i][1] *= rescale[0];
        o_acc[mt][i][2] *= rescale[1];
        o_acc[mt][i][3] *= rescale[1];
      }
    }

    // O += P V.
    accumulate_times_tile<D, MT, BN>(o_acc, s_acc, v_tile + stage * BN * LD, lane);
    __syncthreads();  // the next iteration's prefetch overwrites this stage
  }

  __nv_bfloat16* o_head = static_cast<__nv_bfloat16*>(a.out) + head0;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    float inv[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      row_sum[mt][i] += __shfl_xor_sync(kFullMask, row_sum[mt][i], 1);
      row_sum[mt][i] += __shfl_xor_sync(kFullMask, row_sum[mt][i], 2);
      inv[i] = 1.f / row_sum[mt][i];
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      const int col = dt * 8 + quad * 2;
#pragma unroll
      for (int i = 0; i < 2; ++i)
        if (row[mt][i] < T)
          *reinterpret_cast<__nv_bfloat162*>(o_head + row[mt][i] * row_stride + col) =
              __floats2bfloat162_rn(o_acc[mt][dt][2 * i] * inv[i], o_acc[mt][dt][2 * i + 1] * inv[i]);
    }
    if (quad == 0) {
#pragma unroll
      for (int i = 0; i < 2; ++i)
        if (row[mt][i] < T)
          a.lse[stat_offset(sh, b, h, row[mt][i])] = (row_max[mt][i] + log2f(row_sum[mt][i])) * kLn2;
    }
  }
}

template <typename T, int D>
cudaError_t launch_forward_simt(const SwaForwardArgs& a, cudaStream_t stream) {
  const dim3 grid((a.shape.seq + kSimtWarps - 1) / kSimtWarps, a.shape.heads, a.shape.batch);
  DEV_LAUNCH_ON(grid, kSimtWarps * 32, 0, stream, swa_forward_simt<T, D>)(a);
  return cudaGetLastError();
}

// Tiles <head dim, warps, 16-row tiles per warp, key block, min blocks per SM>.
template <int D, int WARPS, int MT, int BN, int MIN_BLOCKS = 0>
cudaError_t launch_forward_tc(const SwaForwardArgs& a, cudaStream_t stream) {
  constexpr size_t smem = forward_tc_smem_bytes<D, WARPS, MT, BN>();
  auto kernel = swa_forward_tc<D, WARPS, MT, BN, MIN_BLOCKS>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  constexpr int BM = 16 * MT * WARPS;
  const dim3 grid((a.shape.seq + BM - 1) / BM, a.shape.heads, a.shape.batch);
  DEV_LAUNCH_ON(grid, WARPS * 32, smem, stream, kernel)(a);
  return cudaGetLastError();
}

}  // namespace bla::kernels::detail
