// Device helpers shared by the SWA forward and backward kernels: token
// offsets, the window test, and thin wrappers over the PTX instructions the
// tensor-core kernels use (cp.async, ldmatrix, mma.sync m16n8k16 bf16).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>

#include "device_common.cuh"
#include "swa_launch.h"

namespace bla::kernels::detail {

// Warps per block of the SIMT kernels (one query or key per warp).
constexpr int kSimtWarps = 4;

// Element (b, t, h, 0) of a contiguous (B, T, H, D) tensor.
__device__ __forceinline__ size_t token_offset(const SwaShape& s, int b, int t, int h) {
  return ((static_cast<size_t>(b) * s.seq + t) * s.heads + h) * s.dim;
}
// Element (b, h, t) of a (B, H, T) row statistic (lse, delta).
__device__ __forceinline__ size_t stat_offset(const SwaShape& s, int b, int h, int t) {
  return (static_cast<size_t>(b) * s.heads + h) * s.seq + t;
}
// Element (b, t, h) of a (B, T, H) per-token bias.
__device__ __forceinline__ size_t bias_offset(const SwaShape& s, int b, int t, int h) {
  return (static_cast<size_t>(b) * s.seq + t) * s.heads + h;
}

// Key s is visible from query t (docs/bla.md, "N = W": SWA sees t - W < s <= t).
__device__ __forceinline__ bool in_window(int t, int s, int window) { return s <= t && t - s < window; }

// ---- PTX wrappers (sm_80+) -------------------------------------------------
// (under the CPU emulation, kernels/dev/cpu_emulation.h, its stand-ins)

#ifndef BLA_CPU_EMULATION

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte asynchronous copy global -> shared; zero-fills when !valid.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lane l gives the address of row (l % 8) of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem))
               : "memory");
}

// c (16x8 f32) += a (16x16 bf16, row) * b (16x8 bf16, col).
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#else
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  emu::cp_async16(smem, gmem, valid);
}
__device__ __forceinline__ void cp_async_commit() {}
template <int N>
__device__ __forceinline__ void cp_async_wait() {}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) { emu::ldmatrix_x4(r, smem, false); }
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  emu::ldmatrix_x4(r, smem, true);
}
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  emu::mma_16816(c, a, b0, b1);
}
#endif

// Two floats -> bf16x2 register, `lo` in the low half (the smaller column).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// ---- tiles ------------------------------------------------------------------

// Shared-memory row stride (elements): 16 bytes of padding keep the eight
// rows one ldmatrix reads in distinct banks.
template <int D>
constexpr int kRowStride = D + 8;

// Copies rows [row0, row0 + ROWS) of one head of a (B, T, H, D) bf16 tensor
// into a [ROWS][D + 8] shared tile; rows past the sequence become zeros.
template <int D, int ROWS, int THREADS>
__device__ __forceinline__ void load_tile_async(__nv_bfloat16* tile, const __nv_bfloat16* head_base, size_t row_stride,
                                                int row0, int seq) {
  constexpr int kChunksPerRow = D / 8;
  static_assert((ROWS * kChunksPerRow) % THREADS == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int i = 0; i < ROWS * kChunksPerRow / THREADS; ++i) {
    const int c = threadIdx.x + i * THREADS;
    const int r = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    const int token = row0 + r;
    const bool valid = token < seq;
    cp_async16(tile + r * kRowStride<D> + col, head_base + static_cast<size_t>(valid ? token : 0) * row_stride + col,
               valid);
  }
}

// acc (MT tiles of 16 rows by D) += S (MT tiles of 16 rows by BN, in the mma
// accumulator layout) times a [BN][D + 8] bf16 tile: S goes from the
// accumulator layout straight to A fragments, rounded to bf16. O += P V in the
// forward, dQ += dZ K in the backward.
template <int D, int MT, int BN>
__device__ __forceinline__ void accumulate_times_tile(float (&acc)[MT][D / 8][4], const float (&s)[MT][BN / 8][4],
                                                      const __nv_bfloat16* tile, int lane) {
  constexpr int LD = kRowStride<D>;
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk) {
    uint32_t a_frag[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      a_frag[mt][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
      a_frag[mt][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
      a_frag[mt][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
      a_frag[mt][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
    }
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t b_frag[4];
      ldmatrix_x4_trans(b_frag, tile + (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LD + dp * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma_16816(acc[mt][2 * dp], a_frag[mt], b_frag[0], b_frag[1]);
        mma_16816(acc[mt][2 * dp + 1], a_frag[mt], b_frag[2], b_frag[3]);
      }
    }
  }
}

// The key blocks of BN keys that a tile of BM queries from m0 sees (t - W <
// s <= t), streamed through two shared-memory stages past the tile: the
// forward and the dQ pass. A block's K and V rows come by cp.async, the key
// side of the bias (times log2(e)) by plain loads. The first block is loaded
// when the stream is made (its copy group not yet committed).
template <int D, int BM, int BN, int THREADS>
struct KeyBlockStream {
  const SwaShape& sh;
  size_t row_stride;
  const __nv_bfloat16* k_head;
  const __nv_bfloat16* v_head;
  int key_first, key_last;  // the keys the tile sees
  int first, last;          // their blocks, first .. last
  const float* bias;
  int b, h;
  __nv_bfloat16* k_tile;  // [2][BN][D + 8]
  __nv_bfloat16* v_tile;  // [2][BN][D + 8]
  float* key_bias;        // [2][BN]

  __device__ __forceinline__ KeyBlockStream(const SwaShape& shape, const void* k, const void* v, const float* bias_,
                                            int m0, int b_, int h_, __nv_bfloat16* k_tile_, __nv_bfloat16* v_tile_,
                                            float* key_bias_)
      : sh(shape),
        row_stride(static_cast<size_t>(shape.heads) * D),
        k_head(static_cast<const __nv_bfloat16*>(k) + token_offset(shape, b_, 0, h_)),
        v_head(static_cast<const __nv_bfloat16*>(v) + token_offset(shape, b_, 0, h_)),
        key_first(max(0, m0 - shape.window + 1)),
        key_last(min(shape.seq - 1, m0 + BM - 1)),
        first(key_first / BN),
        last(key_last / BN),
        bias(bias_),
        b(b_),
        h(h_),
        k_tile(k_tile_),
        v_tile(v_tile_),
        key_bias(key_bias_) {}

  __device__ __forceinline__ void load(int block, int stage) const {
    constexpr int LD = kRowStride<D>;
    load_tile_async<D, BN, THREADS>(k_tile + stage * BN * LD, k_head, row_stride, block * BN, sh.seq);
    load_tile_async<D, BN, THREADS>(v_tile + stage * BN * LD, v_head, row_stride, block * BN, sh.seq);
    if (bias != nullptr) {
      for (int i = threadIdx.x; i < BN; i += THREADS) {
        const int s = block * BN + i;
        key_bias[stage * BN + i] = s < sh.seq ? bias[bias_offset(sh, b, s, h)] * kLog2e : 0.f;
      }
    }
  }

  // Before block `block`'s math: starts the next block's copy into the other
  // stage, waits for this block's and returns its stage.
  __device__ __forceinline__ int arrive(int block) const {
    const int stage = (block - first) & 1;
    if (block < last) {
      load(block + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    return stage;
  }
};

}  // namespace bla::kernels::detail
