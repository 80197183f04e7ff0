// The gated recurrence's chunk kernels on tensor cores (WMMA m16n16k8, tf32
// operands, fp32 accumulation), for float32 operands that came from bf16 or
// half inputs (their 1e-2 budget has room for tf32's 10-bit mantissa); the
// float32 and float64 paths keep the SIMT kernels of gla_kernels.cuh, with
// the same arguments, workspace and scan. Head dims up to 64, padded to 64
// in shared memory with zeros.
//
// Every product is a block of 16 x 16 fragments. Inside a chunk the pairs
// (i, j <= i) split into sub-chunks of 16 tokens: a pair across two of them
// takes the decay through r_I, the summed log gate just before the later
// sub-chunk I starts,
//   e^{b_i - b_j} = e^{b_i - r_I} e^{r_I - b_j},   both factors <= 1,
// so its sum over the gated axis is a product of rescaled rows (key axis) or
// a product followed by a row scale (value axis). Pairs inside one sub-chunk
// take an exponential per term, in fp32 without tensor cores.
#pragma once

#include <cuda_runtime.h>
#include <mma.h>

#include "block_product.cuh"
#include "gla_kernels.cuh"

namespace bla::kernels::gla {

constexpr int kGlaTcDim = 64;             // Dk and Dv padded to this
constexpr int kGlaTcLd = kGlaTcDim + 4;   // row stride of every shared tile (a multiple of 4 for WMMA)
constexpr int kGlaSub = 16;               // tokens per sub-chunk
constexpr int kGlaSubs = kGlaChunk / kGlaSub;
constexpr int kGlaCrossPairs = kGlaSubs * (kGlaSubs - 1) / 2;  // sub-chunk pairs (I, J < I): 6
static_assert(kGlaThreads == detail::kBlockThreads, "the products assume the chunk kernels' block");
static_assert(kGlaChunk == kGlaTcDim, "the chunk's pair matrix shares the tiles' shape");

inline bool tensor_cores_fit(const GlaDims& s) { return s.dk <= kGlaTcDim && s.dv <= kGlaTcDim; }

// Index of the sub-chunk pair (I, J < I) among the kGlaCrossPairs, and the
// later sub-chunk I of pair p (its earlier one is p - cross_pair(I, 0)).
__host__ __device__ constexpr int cross_pair(int I, int J) { return I * (I - 1) / 2 + J; }
__host__ __device__ constexpr int later_of_pair(int p) {
  int I = 1;
  while (cross_pair(I + 1, 0) <= p) ++I;
  return I;
}
static_assert(later_of_pair(0) == 1 && later_of_pair(2) == 2 && later_of_pair(5) == 3, "(1,0) (2,0) (2,1) (3,0..2)");

// Floats of shared memory: the state kernel's k, v, b and state tiles; the
// output kernel's q, k, b and pair tiles and a scratch area of
// kGlaSubs - 1 + kGlaCrossPairs sub-chunks' rows (the rescaled operands of
// the cross pairs; later the state entering the chunk and v).
constexpr size_t kGlaTcTile = static_cast<size_t>(kGlaChunk) * kGlaTcLd;
constexpr size_t kGlaTcScratchRows = (kGlaSubs - 1 + kGlaCrossPairs) * kGlaSub;  // 144
static_assert(kGlaTcScratchRows >= 2 * kGlaChunk, "the scratch holds the state and v together");
inline size_t gla_tc_state_smem_elements() { return 4 * kGlaTcTile; }
inline size_t gla_tc_output_smem_elements() { return 4 * kGlaTcTile + kGlaTcScratchRows * kGlaTcLd; }

// `width` columns of the chunk's rows into a (kGlaChunk, kGlaTcLd) tile;
// columns width .. kGlaTcDim - 1 and rows past the sequence are 0.
// (The loads go through gather: gla_kernels.cuh.)
__device__ __forceinline__ void put_padded(float* dst, int idx, float x) {
  dst[idx / kGlaTcDim * kGlaTcLd + idx % kGlaTcDim] = x;
}
__device__ inline void load_rows_padded(float* dst, const GlaIn& src, const GlaDims& s, int b, int h,
                                        int first, int width) {
  gather<float>(
      src, kGlaChunk * kGlaTcDim,
      [=](int idx) {
        const int t = first + idx / kGlaTcDim, d = idx % kGlaTcDim;
        return d < width && t < s.seq ? row_offset(src, s, b, h, t) + d : -1LL;
      },
      [=](int idx, float x) { put_padded(dst, idx, x); });
}

// The chunk's log gates (gate_offset) into a padded tile, 0 in columns Dg ...
__device__ inline void load_gates_padded(float* dst, const GlaIn& g, const GlaDims& s, int b, int h,
                                         int first) {
  gather<float>(
      g, kGlaChunk * kGlaTcDim,
      [=](int idx) {
        const int d = idx % kGlaTcDim;
        return d < s.dg() ? gate_offset(g, s, b, h, first + idx / kGlaTcDim, d) : -1LL;
      },
      [=](int idx, float x) { put_padded(dst, idx, x); });
}

// Chunk c's entering state (a.entering) into a tile padded with zeros to
// kGlaTcDim rows and columns.
__device__ inline void load_state_padded(float* dst, const GlaArgs<float>& a, int b, int h, int c) {
  load_entering_state(a, b, h, c, kGlaTcDim, kGlaTcDim, [=](int idx, float x) { put_padded(dst, idx, x); });
}

// Two operands' rows of the chunk (widths w1, w2) and its gates' running
// sums b (bs), each a padded tile.
__device__ inline void load_with_gate_sums(float* x1, const GlaIn& src1, int w1, float* x2, const GlaIn& src2, int w2,
                                           float* bs, const GlaArgs<float>& a, int b, int h, int first) {
  load_rows_padded(x1, src1, a.s, b, h, first, w1);
  load_rows_padded(x2, src2, a.s, b, h, first, w2);
  load_gates_padded(bs, a.g, a.s, b, h, first);
  __syncthreads();
  running_sum_rows(bs, kGlaTcLd, a.s.dg());
  __syncthreads();
}

// r_I[d]: the summed log gate just before sub-chunk I (0 before the first).
__device__ __forceinline__ float gate_before(const float* bs, int I, int d) {
  return I == 0 ? 0.f : bs[(I * kGlaSub - 1) * kGlaTcLd + d];
}

// One warp: dst (16 x 16, row stride ld_dst) = sum over the listed operand
// pairs of A (16 x 16 k, row-major) times B (k x 16). B is row-major
// (b_row = its row stride, b_col = 1) or the transpose of a row-major
// (16 x k) tile (b_row = 1, b_col = its row stride). Operands are rounded to
// tf32 as they are loaded.
struct WarpTile {
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float> acc;
  __device__ __forceinline__ WarpTile() { nvcuda::wmma::fill_fragment(acc, 0.f); }

  __device__ __forceinline__ void add(const float* a, int lda, const float* b, int b_row, int b_col, int K) {
    using namespace nvcuda;
    for (int k = 0; k < K; k += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
      wmma::load_matrix_sync(fa, a + k, lda);
      detail::TensorCoreProduct<16, 16>::to_tf32(fa);
      if (b_col == 1) {
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
        wmma::load_matrix_sync(fb, b + k * b_row, b_row);
        detail::TensorCoreProduct<16, 16>::to_tf32(fb);
        wmma::mma_sync(acc, fa, fb, acc);
      } else {
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
        wmma::load_matrix_sync(fb, b + k, b_col);
        detail::TensorCoreProduct<16, 16>::to_tf32(fb);
        wmma::mma_sync(acc, fa, fb, acc);
      }
    }
  }
  __device__ __forceinline__ void store(float* dst, int ld) const {
    nvcuda::wmma::store_matrix_sync(dst, acc, ld, nvcuda::wmma::mem_row_major);
  }
};

// gla_chunk_state on tensor cores: U = (k * decay)^T v (key axis) or
// k^T (v * decay) (value axis), decay = e^{b_last - b_j}.
// (Its shared memory allows 3 blocks an SM: the bound lets ptxas use the
// registers that leaves instead of spilling at its default.)
__global__ void __launch_bounds__(kGlaThreads, 3) gla_chunk_state_tc(GlaArgs<float> a) {
  DEV_EXTERN_SHARED(unsigned char, gla_smem);
  constexpr int C = kGlaChunk, LD = kGlaTcLd;
  const GlaDims& s = a.s;
  const int Dk = s.dk, Dv = s.dv, Dg = s.dg();
  float* ks = reinterpret_cast<float*>(gla_smem);  // (C, LD) each
  float* vs = ks + kGlaTcTile;
  float* bs = vs + kGlaTcTile;
  float* U = bs + kGlaTcTile;  // (Dk padded, LD)
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, first = c * C;
  load_with_gate_sums(ks, a.k, Dk, vs, a.v, Dv, bs, a, b, h, first);
  const float* last = bs + (C - 1) * LD;
  float* weighted = s.value_axis ? vs : ks;
  for (int idx = threadIdx.x; idx < C * Dg; idx += blockDim.x) {
    const int j = idx / Dg, d = idx % Dg;
    weighted[j * LD + d] *= exp_nonpositive(last[d] - bs[j * LD + d]);
  }
  __syncthreads();
  detail::TensorCoreProduct<kGlaTcDim, kGlaTcDim> u(U);
  u.zero();
  u.add_product<C>(ks, 1, LD, vs, LD, 1);  // A = K^T: element (dk, j) at ks[j * LD + dk]
  u.store(U, LD);
  __syncthreads();
  float* out = a.states + chunk_state_offset(s, b, h, c);
  for (int idx = threadIdx.x; idx < Dk * Dv; idx += blockDim.x) out[idx] = U[(idx / Dv) * LD + idx % Dv];
  float* total = a.totals + total_offset(s, b, h, c);
  for (int d = threadIdx.x; d < Dg; d += blockDim.x) total[d] = last[d];
}

// gla_chunk_output on tensor cores (the same outputs; the header comment
// says how the pairs split).
// (Its shared memory allows 2 blocks an SM; the bound, as the state
// kernel's.)
__global__ void __launch_bounds__(kGlaThreads, 2) gla_chunk_output_tc(GlaArgs<float> a) {
  DEV_EXTERN_SHARED(unsigned char, gla_smem);
  constexpr int C = kGlaChunk, LD = kGlaTcLd, SUB = kGlaSub;
  const GlaDims& s = a.s;
  const int Dk = s.dk, Dv = s.dv;
  float* qs = reinterpret_cast<float*>(gla_smem);  // (C, LD): q
  float* ks = qs + kGlaTcTile;                     // (C, LD): k, later v (value axis) or the output (key axis)
  float* bs = ks + kGlaTcTile;                     // (C, LD): the running gate sums b
  float* A = bs + kGlaTcTile;                      // (C, LD): the pairs (key axis: A_ij; value axis: q_i . k_j)
  float* X = A + kGlaTcTile;                       // (kGlaTcScratchRows, LD)
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, first = c * C;
  const int warp = threadIdx.x / 32;
  load_with_gate_sums(qs, a.q, Dk, ks, a.k, Dk, bs, a, b, h, first);

  if (!s.value_axis) {
    // Rescaled operands of the cross pairs: X rows 16 (I - 1) .. hold
    // q_i e^{b_i - r_I} for sub-chunk I >= 1; then, per pair (I, J < I),
    // 16 rows of k_j e^{r_I - b_j}.
    float* qx = X;
    float* kx = X + (kGlaSubs - 1) * SUB * LD;
    // (Padded columns: q, k and b are 0 there, so these are too.)
    for (int idx = threadIdx.x; idx < (C - SUB) * kGlaTcDim; idx += blockDim.x) {
      const int i = SUB + idx / kGlaTcDim, d = idx % kGlaTcDim;
      qx[(i - SUB) * LD + d] = qs[i * LD + d] * exp_nonpositive(bs[i * LD + d] - gate_before(bs, i / SUB, d));
    }
    for (int idx = threadIdx.x; idx < kGlaCrossPairs * SUB * kGlaTcDim; idx += blockDim.x) {
      const int p = idx / (SUB * kGlaTcDim), row = idx / kGlaTcDim % SUB, d = idx % kGlaTcDim;
      const int I = later_of_pair(p);
      const int j = (p - cross_pair(I, 0)) * SUB + row;
      kx[(p * SUB + row) * LD + d] = ks[j * LD + d] * exp_nonpositive(gate_before(bs, I, d) - bs[j * LD + d]);
    }
    // Pairs inside a sub-chunk, one exponential per term (each thread's
    // pairs in one sub-chunk, so that no warp walks rows without any);
    // pairs above the diagonal sub-chunks are 0.
    for (int idx = threadIdx.x; idx < kGlaSubs * SUB * SUB; idx += blockDim.x) {
      const int I = idx / (SUB * SUB), i = I * SUB + idx / SUB % SUB, j = I * SUB + idx % SUB;
      float acc = 0.f;
      if (j <= i)
        for (int d = 0; d < Dk; ++d)
          acc += qs[i * LD + d] * ks[j * LD + d] * exp_nonpositive(bs[i * LD + d] - bs[j * LD + d]);
      A[i * LD + j] = acc;
    }
    for (int idx = threadIdx.x; idx < C * C; idx += blockDim.x)
      if (idx % C / SUB > idx / C / SUB) A[(idx / C) * LD + idx % C] = 0.f;
    __syncthreads();
    if (warp < kGlaCrossPairs) {  // one cross pair per warp: A_IJ = qx_I kx_(I,J)^T
      const int I = later_of_pair(warp), J = warp - cross_pair(I, 0);
      WarpTile t;
      t.add(qx + (I - 1) * SUB * LD, LD, kx + warp * SUB * LD, 1, LD, kGlaTcDim);
      t.store(A + I * SUB * LD + J * SUB, LD);
    }
    // q_i e^{b_i} for the state's term, then the state and v into the scratch.
    for (int idx = threadIdx.x; idx < C * Dk; idx += blockDim.x) {
      const int i = idx / Dk, d = idx % Dk;
      qs[i * LD + d] *= exp_nonpositive(bs[i * LD + d]);
    }
    __syncthreads();
    float* S = X;
    float* vs = X + kGlaTcTile;
    load_state_padded(S, a, b, h, c);
    load_rows_padded(vs, a.v, s, b, h, first, Dv);
    __syncthreads();
    detail::TensorCoreProduct<C, kGlaTcDim> o(X);
    o.zero();
    o.add_product<C>(A, LD, 1, vs, LD, 1);
    o.add_product<kGlaTcDim>(qs, LD, 1, S, LD, 1);
    o.store(ks, LD);
    __syncthreads();
    for (int idx = threadIdx.x; idx < C * Dv; idx += blockDim.x) {
      const int i = idx / Dv, e = idx % Dv, t = first + i;
      if (t < s.seq) a.out.ptr[row_offset(a.out, s, b, h, t) + e] = a.scale * ks[i * LD + e];
    }
    return;
  }

  // Value axis. The pairs' dot products q_i . k_j and the state's term q_i^T S.
  float* S = X;
  load_state_padded(S, a, b, h, c);
  __syncthreads();
  {
    detail::TensorCoreProduct<C, C> pairs(X);
    detail::TensorCoreProduct<C, kGlaTcDim> from_state(X);
    pairs.zero();
    from_state.zero();
    pairs.add_product<kGlaTcDim>(qs, LD, 1, ks, 1, LD);  // B = K^T
    from_state.add_product<kGlaTcDim>(qs, LD, 1, S, LD, 1);
    __syncthreads();
    pairs.store(A, LD);
    from_state.store(qs, LD);  // q is no longer needed: qs holds q_i^T S
  }
  float* vs = ks;  // k is no longer needed
  load_rows_padded(vs, a.v, s, b, h, first, Dv);
  __syncthreads();
  // Per pair (I, J < I), 16 rows of v_j e^{r_I - b_j} in X (the state is no
  // longer needed; v and b are 0 in the padded columns, so these are too).
  for (int idx = threadIdx.x; idx < kGlaCrossPairs * SUB * kGlaTcDim; idx += blockDim.x) {
    const int p = idx / (SUB * kGlaTcDim), row = idx / kGlaTcDim % SUB, e = idx % kGlaTcDim;
    const int I = later_of_pair(p);
    const int J = p - cross_pair(I, 0), j = J * SUB + row;
    X[(p * SUB + row) * LD + e] = vs[j * LD + e] * exp_nonpositive(gate_before(bs, I, e) - bs[j * LD + e]);
  }
  __syncthreads();
  // Sub-chunk I's rows, column tile n: sum_{J < I} P_IJ vx_(I,J), into the
  // rows after the rescaled operands. 3 x 4 tiles over the 8 warps.
  float* cross = X + kGlaCrossPairs * SUB * LD;
  for (int tile = warp; tile < (kGlaSubs - 1) * (kGlaTcDim / 16); tile += kGlaThreads / 32) {
    const int I = 1 + tile / (kGlaTcDim / 16), n = tile % (kGlaTcDim / 16);
    WarpTile t;
    for (int J = 0; J < I; ++J)
      t.add(A + I * SUB * LD + J * SUB, LD, X + cross_pair(I, J) * SUB * LD + n * 16, LD, 1, SUB);
    t.store(cross + (I - 1) * SUB * LD + n * 16, LD);
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < C * Dv; idx += blockDim.x) {
    const int i = idx / Dv, e = idx % Dv, t = first + i, I = i / SUB;
    if (t >= s.seq) continue;
    const float bie = bs[i * LD + e];
    float own = 0.f;
    for (int j = I * SUB; j <= i; ++j) own += A[i * LD + j] * vs[j * LD + e] * exp_nonpositive(bie - bs[j * LD + e]);
    if (I > 0) own += cross[(i - SUB) * LD + e] * exp_nonpositive(bie - gate_before(bs, I, e));
    a.out.ptr[row_offset(a.out, s, b, h, t) + e] = a.scale * (own + exp_nonpositive(bie) * qs[i * LD + e]);
  }
}

}  // namespace bla::kernels::gla
