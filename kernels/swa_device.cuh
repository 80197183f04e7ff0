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

}  // namespace bla::kernels::detail
