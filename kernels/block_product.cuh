// Block-wide matrix products over float32 operands in shared or global
// memory (row- or column-major, so transposes cost nothing), for kernels of
// kBlockThreads threads: the BLA chunk kernels and the gated recurrence's
// (GLA, GSA).
//
// Three products with one interface: SimtProduct (fp32 FMA; float32 inputs,
// the 1e-4 path), and on tensor cores with tf32 operands and fp32
// accumulation (bf16 inputs, whose 1e-2 budget tf32's 10-bit mantissa fits)
// TensorCoreProduct (WMMA m16n16k8; the GLA kernels) and MmaProduct
// (mma.sync m16n8k8, epilogues from registers; the BLA kernels, where it
// took 11% off forward+backward against WMMA on an H100).
// Product<T, M, N> picks SimtProduct or MmaProduct by input type.
// MmaProduct orders its stores, and pairs the k of its reads where both
// operands lie transposed, so that on the BLA tiles' row strides (4 mod 32
// floats) a warp's shared-memory accesses hit one lane a bank
// (docs/performance.md, "The fused BLA kernels").
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>
#include <type_traits>

namespace bla::kernels::detail {

constexpr int kBlockThreads = 256;
constexpr int kBlockWarps = kBlockThreads / 32;

// What a product's operand holds, for the tensor cores' tf32: kRound (any
// float32, rounded to tf32 as it is loaded) or kFromBf16 (values loaded from
// bf16 inputs, exact in tf32, so rounding would change nothing).
constexpr bool kRound = false;
constexpr bool kFromBf16 = true;

// What BLA's product tables (h, h^T, R, R^T, inject) hold for the tensor
// cores: values rounded to tf32 already (BlaChunkTables' *_tf32 copies,
// which the library passes for bf16 inputs), so they load without the
// rounding (exact, as kFromBf16 operands are).
constexpr bool kTable = true;

// Whether columns [Lo, Hi) of an N-column tile are whole 16-column tiles.
template <int Lo, int Hi, int N>
constexpr bool kWholeTiles = Lo % 16 == 0 && Hi % 16 == 0 && 0 <= Lo && Lo < Hi && Hi <= N;

// What every product derives from its for_each_in_cols<Lo, Hi>(f) (f(row,
// col, value) for the elements of columns [Lo, Hi) that this thread holds):
// for_each over all columns and store into float memory.
template <typename Product, int N>
struct ElementwiseEpilogue {
  // f(row, col, value) for every element this thread owns.
  template <typename F>
  __device__ __forceinline__ void for_each(F&& f) const {
    static_cast<const Product*>(this)->template for_each_in_cols<0, N>(f);
  }

  // The tile into float memory (shared or global), row stride ld.
  __device__ __forceinline__ void store(float* dst, int ld) const {
    for_each([&](int r, int c, float x) { dst[r * ld + c] = x; });
  }
};

// Accumulators of an M x N product tile, spread over the block: thread
// (ty, tx) = (tid / 16, tid % 16) owns rows ty + 16 i and columns tx + 16 j.
template <int M, int N>
struct SimtProduct : ElementwiseEpilogue<SimtProduct<M, N>, N> {
  static_assert(M % 16 == 0 && N % 16 == 0, "tiles are multiples of 16");
  static constexpr int kRows = M / 16;
  static constexpr int kCols = N / 16;
  float v[kRows][kCols];

  __device__ __forceinline__ explicit SimtProduct(float* /*scratch*/) {}

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < kRows; ++i)
#pragma unroll
      for (int j = 0; j < kCols; ++j) v[i][j] = 0.f;
  }

  // acc += A B, A (M x K) with element (m, k) at a[m * a_row + k * a_col],
  // B (K x N) with element (k, n) at b[k * b_row + n * b_col]. (The exact-
  // operand flags only matter on tensor cores.)
  template <int K, bool kExactA = kRound, bool kExactB = kRound>
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

  __device__ __forceinline__ void scale(float by) {
#pragma unroll
    for (int i = 0; i < kRows; ++i)
#pragma unroll
      for (int j = 0; j < kCols; ++j) v[i][j] *= by;
  }

  template <int Lo, int Hi, typename F>
  __device__ __forceinline__ void for_each_in_cols(F&& f) const {
    static_assert(kWholeTiles<Lo, Hi, N>, "a range of whole 16-column tiles");
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll
    for (int i = 0; i < kRows; ++i)
#pragma unroll
      for (int j = Lo / 16; j < Hi / 16; ++j) f(ty + 16 * i, tx + 16 * j, v[i][j]);
  }
};

// The same on tensor cores: the M x N tile in 16 x 16 fragments, spread
// evenly over the 8 warps (a tile of fewer than 8 fragments, the carry's
// 32 x 32 at 32 slots, takes one warp per fragment and leaves the others
// idle). Operands must be 32-byte aligned with leading dimensions that are
// multiples of 4 (the BLA and GLA layouts' strides are). for_each goes through a 16 x 16
// scratch area per warp (the fragment layout is opaque).
template <int M, int N>
struct TensorCoreProduct : ElementwiseEpilogue<TensorCoreProduct<M, N>, N> {
  static_assert(M % 16 == 0 && N % 16 == 0, "tiles are multiples of 16");
  static constexpr int kTileCols = N / 16;
  static constexpr int kFragments = (M / 16) * kTileCols;
  static constexpr int kWarps = kFragments < kBlockWarps ? kFragments : kBlockWarps;  // warps holding fragments
  static_assert(kFragments % kWarps == 0, "fragments spread evenly over the warps");
  static constexpr int kPerWarp = kFragments / kWarps;
  using Accumulator = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float>;
  Accumulator f[kPerWarp];
  float* scratch;  // this warp's 16 x 16 floats

  __device__ __forceinline__ explicit TensorCoreProduct(float* scratch_base)
      : scratch(scratch_base + (threadIdx.x / 32) * 256) {}

  __device__ __forceinline__ static int tile_row(int i) { return ((threadIdx.x / 32) * kPerWarp + i) / kTileCols; }
  __device__ __forceinline__ static int tile_col(int i) { return ((threadIdx.x / 32) * kPerWarp + i) % kTileCols; }
  // Whether this warp holds fragments (warp-uniform, so the warp-wide
  // fragment operations below stay whole-warp).
  __device__ __forceinline__ static bool holds() { return kWarps == kBlockWarps || threadIdx.x / 32 < kWarps; }

  __device__ __forceinline__ void zero() {
    if (!holds()) return;
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) nvcuda::wmma::fill_fragment(f[i], 0.f);
  }

  template <typename Fragment>
  __device__ __forceinline__ static void to_tf32(Fragment& frag) {
#pragma unroll
    for (int e = 0; e < frag.num_elements; ++e) frag.x[e] = nvcuda::wmma::__float_to_tf32(frag.x[e]);
  }

  // acc += A B with SimtProduct's addressing; each operand is row-major
  // (column stride 1) or column-major (row stride 1). A warp's tiles share
  // one tile row (every shape used here), so each k step loads the A
  // fragment once and one B fragment per tile. Operands flagged kFromBf16
  // skip the tf32 rounding.
  template <int K, bool kExactA = kRound, bool kExactB = kRound>
  __device__ __forceinline__ void add_product(const float* a, int a_row, int a_col, const float* b, int b_row,
                                              int b_col) {
    using namespace nvcuda;
    static_assert(K % 8 == 0, "K is a multiple of 8");
    static_assert(kTileCols % kPerWarp == 0, "a warp's tiles lie in one tile row");
    if (!holds()) return;
    const int r = tile_row(0) * 16;
#pragma unroll 2
    for (int k = 0; k < K; k += 8) {
      if (a_col == 1) {
        wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
        wmma::load_matrix_sync(fa, a + r * a_row + k, a_row);
        if constexpr (!kExactA) to_tf32(fa);
        mma_row<kExactB>(fa, b, b_row, b_col, k);
      } else {
        wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fa;
        wmma::load_matrix_sync(fa, a + r + k * a_col, a_col);
        if constexpr (!kExactA) to_tf32(fa);
        mma_row<kExactB>(fa, b, b_row, b_col, k);
      }
    }
  }

  // f[i] += fa B[k .. k + 8, tile i's columns] for each of this warp's tiles.
  template <bool kExactB, typename FragmentA>
  __device__ __forceinline__ void mma_row(const FragmentA& fa, const float* b, int b_row, int b_col, int k) {
    using namespace nvcuda;
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) {
      const int c = tile_col(i) * 16;
      if (b_col == 1) {
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
        wmma::load_matrix_sync(fb, b + k * b_row + c, b_row);
        if constexpr (!kExactB) to_tf32(fb);
        wmma::mma_sync(f[i], fa, fb, f[i]);
      } else {
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
        wmma::load_matrix_sync(fb, b + k + c * b_col, b_col);
        if constexpr (!kExactB) to_tf32(fb);
        wmma::mma_sync(f[i], fa, fb, f[i]);
      }
    }
  }

  __device__ __forceinline__ void scale(float by) {
    if (!holds()) return;
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i)
#pragma unroll
      for (int e = 0; e < f[i].num_elements; ++e) f[i].x[e] *= by;
  }

  // The tile into float memory (shared or global), row stride ld: 32-byte
  // aligned with ld a multiple of 4.
  __device__ __forceinline__ void store(float* dst, int ld) const {
    if (!holds()) return;
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i)
      nvcuda::wmma::store_matrix_sync(dst + tile_row(i) * 16 * ld + tile_col(i) * 16, f[i], ld,
                                      nvcuda::wmma::mem_row_major);
  }

  // (A fragment outside [Lo, Hi) is skipped whole.)
  template <int Lo, int Hi, typename F>
  __device__ __forceinline__ void for_each_in_cols(F&& f_) const {
    static_assert(kWholeTiles<Lo, Hi, N>, "a range of whole 16-column tiles");
    if (!holds()) return;
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) {
      if (tile_col(i) < Lo / 16 || tile_col(i) >= Hi / 16) continue;  // warp-uniform
      nvcuda::wmma::store_matrix_sync(scratch, f[i], 16, nvcuda::wmma::mem_row_major);
      __syncwarp();
      const int r = tile_row(i) * 16, c = tile_col(i) * 16;
#pragma unroll
      for (int e = lane; e < 256; e += 32) f_(r + e / 16, c + e % 16, scratch[e]);
      __syncwarp();
    }
  }
};

// mma.sync m16n8k8 with tf32 operands (PTX ISA fragment layouts, g = lane /
// 4, t = lane % 4): A (16 x 8) a0 = A[g][t], a1 = A[g + 8][t], a2 = A[g][t +
// 4], a3 = A[g + 8][t + 4]; B (8 x 8) b0 = B[t][g], b1 = B[t + 4][g]; C and
// D (16 x 8) c0, c1 = D[g][2t, 2t + 1], c2, c3 = D[g + 8][2t, 2t + 1].
// Operands are float32 bit patterns; the tensor cores read their tf32 bits.
#ifndef BLA_CPU_EMULATION
__device__ __forceinline__ uint32_t float_bits(float x) { return __float_as_uint(x); }
__device__ __forceinline__ uint32_t tf32_bits(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ void mma_1688_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#else
__device__ __forceinline__ uint32_t float_bits(float x) { return emu::float_bits(x); }
__device__ __forceinline__ uint32_t tf32_bits(float x) { return emu::float_bits(nvcuda::wmma::__float_to_tf32(x)); }
__device__ __forceinline__ void mma_1688_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  emu::mma_1688_tf32(c, a, b0, b1);
}
#endif

// TensorCoreProduct's interface on mma.sync m16n8k8 tf32, whose fragment
// layout is known: the epilogues (store, for_each) read the accumulators in
// registers, with no scratch round trip (the scratch argument is unused).
// Each 16 x 16 tile of a warp is two n8 halves.
template <int M, int N>
struct MmaProduct : ElementwiseEpilogue<MmaProduct<M, N>, N> {
  static_assert(M % 16 == 0 && N % 16 == 0, "tiles are multiples of 16");
  static constexpr int kTileCols = N / 16;
  static constexpr int kFragments = (M / 16) * kTileCols;
  static constexpr int kWarps = kFragments < kBlockWarps ? kFragments : kBlockWarps;
  static_assert(kFragments % kWarps == 0, "fragments spread evenly over the warps");
  static constexpr int kPerWarp = kFragments / kWarps;
  float acc[kPerWarp][2][4];

  __device__ __forceinline__ explicit MmaProduct(float* /*scratch*/) {}

  __device__ __forceinline__ static int tile_row(int i) { return ((threadIdx.x / 32) * kPerWarp + i) / kTileCols; }
  __device__ __forceinline__ static int tile_col(int i) { return ((threadIdx.x / 32) * kPerWarp + i) % kTileCols; }
  __device__ __forceinline__ static bool holds() { return kWarps == kBlockWarps || threadIdx.x / 32 < kWarps; }

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][h][e] = 0.f;
  }

  template <bool kExact>
  __device__ __forceinline__ static uint32_t operand(float x) {
    if constexpr (kExact) {
      return float_bits(x);
    } else {
      return tf32_bits(x);
    }
  }

  // acc += A B with SimtProduct's addressing (any strides).
  template <int K, bool kExactA = kRound, bool kExactB = kRound>
  __device__ __forceinline__ void add_product(const float* a, int a_row, int a_col, const float* b, int b_row,
                                              int b_col) {
    static_assert(K % 8 == 0, "K is a multiple of 8");
    static_assert(kTileCols % kPerWarp == 0, "a warp's tiles lie in one tile row");
    if (!holds()) return;
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    // The k of the lane's k-slots t and t + 4: k + t and k + t + 4, or,
    // where both operands are read transposed (A column-major, B
    // row-major), k + 2t and k + 2t + 1, in A and B alike (the mma sums the
    // same terms): on a stride of 4 mod 32 floats those reads hit banks
    // g + 8t (+ 4) and 8t + g, one lane a bank, where k + t hits g + 4t,
    // two lanes a bank.
    const bool paired = a_row == 1 && b_col == 1;
    const int k_lo = paired ? 2 * t : t, k_step = paired ? 1 : 4;
    const float* a0 = a + (tile_row(0) * 16 + g) * a_row + k_lo * a_col;
#pragma unroll 2
    for (int k = 0; k < K; k += 8) {
      const float* ak = a0 + k * a_col;
      const uint32_t fa[4] = {operand<kExactA>(ak[0]), operand<kExactA>(ak[8 * a_row]),
                              operand<kExactA>(ak[k_step * a_col]),
                              operand<kExactA>(ak[8 * a_row + k_step * a_col])};
#pragma unroll
      for (int i = 0; i < kPerWarp; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float* bk = b + (k + k_lo) * b_row + (tile_col(i) * 16 + 8 * h + g) * b_col;
          mma_1688_tf32(acc[i][h], fa, operand<kExactB>(bk[0]), operand<kExactB>(bk[k_step * b_row]));
        }
    }
  }

  __device__ __forceinline__ void scale(float by) {
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][h][e] *= by;
  }

  // The tile into float memory, row stride ld. A lane holds columns c and
  // c + 1 of rows g and g + 8; lanes of odd g store c + 1 first, so that
  // where ld = 4 (mod 32), as every BLA shared tile's is, each store
  // instruction's 32 lanes hit 32 different banks (banks 4g + 2t + (g & 1)),
  // not two lanes a bank (4g + 2t).
  __device__ __forceinline__ void store(float* dst, int ld) const {
    if (!holds()) return;
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4, odd = g & 1;
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) {
      const int r = tile_row(i) * 16 + g;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int c = tile_col(i) * 16 + 8 * h + 2 * t;
        float* top = dst + r * ld + c;
        float* bottom = top + 8 * ld;
        top[odd] = odd ? acc[i][h][1] : acc[i][h][0];
        bottom[odd] = odd ? acc[i][h][3] : acc[i][h][2];
        top[1 - odd] = odd ? acc[i][h][0] : acc[i][h][1];
        bottom[1 - odd] = odd ? acc[i][h][2] : acc[i][h][3];
      }
    }
  }

  template <int Lo, int Hi, typename F>
  __device__ __forceinline__ void for_each_in_cols(F&& f) const {
    static_assert(kWholeTiles<Lo, Hi, N>, "a range of whole 16-column tiles");
    if (!holds()) return;
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) {
      if (tile_col(i) < Lo / 16 || tile_col(i) >= Hi / 16) continue;
      const int r = tile_row(i) * 16 + g;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int c = tile_col(i) * 16 + 8 * h + 2 * t;
        f(r, c, acc[i][h][0]);
        f(r, c + 1, acc[i][h][1]);
        f(r + 8, c, acc[i][h][2]);
        f(r + 8, c + 1, acc[i][h][3]);
      }
    }
  }
};

// bf16 inputs take the tensor cores; float32 inputs keep fp32 arithmetic.
template <typename T, int M, int N>
using Product = std::conditional_t<std::is_same_v<T, __nv_bfloat16>, MmaProduct<M, N>, SimtProduct<M, N>>;

}  // namespace bla::kernels::detail
