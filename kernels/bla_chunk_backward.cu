// BLA chunk backward: two passes, each one block per (chunk, head, batch).
// The first reads the chunk's probabilities where the forward saved them
// (autograd does) and recomputes them otherwise, then writes the grads of v,
// of the modal values and of the scores;
// the second turns the score grads into those of q, k and the modal keys.
// Two passes, not one, so that each fits two blocks per SM at D = N = 64.
// tests/ops/bla_modal_test.cpp (kernel_backward) has the same steps in
// LibTorch ops and checks them against autograd.
#include "bla_chunk_device.cuh"

namespace bla::kernels::detail {
namespace {

// In place: grad_z = scale * p * (grad_p - <p, grad_p>) on each row.
template <int NP>
__device__ __forceinline__ void softmax_backward_rows(const float* p, float* grad, int ld, float scale) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = warp; i < kBlaChunk; i += kBlaWarps) {
    const float* prow = p + i * ld;
    float* grow = grad + i * ld;
    float dot = 0.f;
#pragma unroll
    for (int u = 0; u < NP / 32; ++u) dot += prow[lane + 32 * u] * grow[lane + 32 * u];
    dot = warp_sum(dot);
#pragma unroll
    for (int u = 0; u < NP / 32; ++u) {
      const int j = lane + 32 * u;
      grow[j] = scale * prow[j] * (grow[j] - dot);
    }
  }
}

// Pass 1: the probabilities (saved, or the forward again), then the grads of v
// and the modal values, and the grads of the scores (to the workspace).
template <typename T, int D, int NP>
__global__ void __launch_bounds__(kBlaThreads, (kChunkBlocksPerSm<D, NP>)) bla_chunk_backward_scores_kernel(BlaChunkArgs args) {
  using L = BlaLayout<D, NP>;
  constexpr int C = kBlaChunk;
  DEV_EXTERN_SHARED(float, smem);
  float* qd = smem;                 // (C, D) queries, then output grads
  float* kvs = qd + L::kTileD;      // (C, D) keys, then values
  float* lag = kvs + L::kTileD;     // (C, C) skewed scores, token weights, skewed grads of token weights
  float* zs = lag + L::kTileC;      // (C, NP) probabilities
  float* ys = zs + L::kTileN;       // (C, NP) modal products, modal output weights, their grads
  float* gz = ys + L::kTileN;       // (C, NP) staged modal keys, values; grads of probabilities, of scores
  float* scratch = gz + L::kTileN;  // per-warp 16 x 16 (tensor-core epilogues)
  static_assert(kModalTileFloats<D, NP> <= L::kTileN, "a staged modal tile fits gz");

  const BlaChunkShape& s = args.shape;
  const BlaChunkTablesView& tb = args.tables;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int first = c * C;
  const size_t modal = modal_offset(s, b, h, c);
  const float* modal_keys = args.modal_keys + modal;
  const float* modal_values = args.modal_values + modal;

  prefetch_span(modal_values, sizeof(float) * NP * D);
  if (args.probabilities != nullptr) {  // saved by the forward
    dense_to_tile<C, NP>(zs, L::kLdN, args.probabilities + score_offset(s, b, h, c));
  } else {
    prefetch_span(modal_keys, sizeof(float) * NP * D);
    prefetch_rows<T, D>(static_cast<const T*>(args.grad_out), token_stride(0, s), s, b, h, first);
    prefetch_rows<T, D>(static_cast<const T*>(args.v), token_stride(args.v_row, s), s, b, h, first);
    load_and_score<T, D, NP>(args, modal_operand<D, NP>(gz, modal_keys), qd, kvs, lag, zs, ys, scratch, b, h,
                             first);
  }
  zero_tile(lag, C, C, L::kLdC);
  load_rows<T, D>(qd, static_cast<const T*>(args.grad_out), token_stride(0, s), s, b, h, first);  // queries are done
  load_rows<T, D>(kvs, static_cast<const T*>(args.v), token_stride(args.v_row, s), s, b, h, first);  // keys are done
  const ModalOperand values = modal_operand<D, NP>(gz, modal_values);         // so are the modal keys
  __syncthreads();
  chunk_output_weights<T, D, NP>(tb, zs, ys, lag, scratch);
  {
    Product<T, NP, D> gu(scratch);
    gu.zero();
    gu.template add_product<C, kRound, kFromBf16>(ys, 1, L::kLdN, qd, L::kLdD, 1);
    gu.store(args.grad_modal_values + modal, D);
    Product<T, C, D> gv(scratch);
    gv.zero();
    gv.template add_product<C, kRound, kFromBf16>(lag, 1, L::kLdC, qd, L::kLdD, 1);
    gv.for_each(RowStore<T, D>{static_cast<T*>(args.grad_v), &s, b, h, first});
  }
  __syncthreads();
  zero_tile(lag, C, C, L::kLdC);
  {
    Product<T, C, NP> gx(scratch);
    gx.zero();
    gx.template add_product<D, kFromBf16, kRound>(qd, L::kLdD, 1, values.data, 1, values.ld);
    gx.store(ys, L::kLdN);
  }
  __syncthreads();
  modal_rows<NP>(ys, L::kLdN, tb.alpha, tb.beta, tb.partner);  // through Bn^T's adjoint
  {
    Product<T, C, C> gw(scratch);  // grads of the token weights [i, s], stored skewed
    gw.zero();
    gw.template add_product<D, kFromBf16, kFromBf16>(qd, L::kLdD, 1, kvs, 1, L::kLdD);
    gw.for_each([&](int i, int j, float x) {
      if (j <= i) lag[i * L::kLdC + (i - j)] = x;
    });
  }
  __syncthreads();
  {
    Product<T, C, NP> gp(scratch);
    gp.zero();
    gp.template add_product<NP, kRound, kTable>(ys, L::kLdN, 1, tb.basis_t, NP, 1);
    gp.template add_product<C, kRound, kTable>(lag, L::kLdC, 1, tb.h, NP, 1);
    gp.store(gz, L::kLdN);
  }
  __syncthreads();
  softmax_backward_rows<NP>(zs, gz, L::kLdN, s.scale);
  __syncthreads();
  tile_to_dense<C, NP>(args.grad_scores + score_offset(s, b, h, c), gz, L::kLdN);
}

// Pass 2: from the grads of the scores, the grads of q, k and the modal keys.
template <typename T, int D, int NP>
__global__ void __launch_bounds__(kBlaThreads, (kChunkBlocksPerSm<D, NP>)) bla_chunk_backward_inputs_kernel(BlaChunkArgs args) {
  using L = BlaLayout<D, NP>;
  constexpr int C = kBlaChunk;
  DEV_EXTERN_SHARED(float, smem);
  float* qs = smem;                 // (C, D) queries
  float* ks = qs + L::kTileD;       // (C, D) keys
  float* gs = ks + L::kTileD;       // (C, C) grads of the scores [i, s]
  float* gy = gs + L::kTileC;       // (C, NP) grads of the modal products
  float* gz = gy + L::kTileN;       // (C, NP) grads of the scores (from pass 1)
  float* scratch = gz + L::kTileN;  // per-warp 16 x 16 (tensor-core epilogues)
  float* us = scratch + L::kScratch;  // (NP, D) modal keys, where staged

  const BlaChunkShape& s = args.shape;
  const BlaChunkTablesView& tb = args.tables;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int first = c * C;
  const size_t modal = modal_offset(s, b, h, c);

  prefetch_span(args.modal_keys + modal, sizeof(float) * NP * D);
  dense_to_tile<C, NP>(gz, L::kLdN, args.grad_scores + score_offset(s, b, h, c));
  const ModalOperand keys = modal_operand<D, NP>(us, args.modal_keys + modal);
  load_rows<T, D>(qs, static_cast<const T*>(args.q), token_stride(args.q_row, s), s, b, h, first);
  load_rows<T, D>(ks, static_cast<const T*>(args.k), token_stride(args.k_row, s), s, b, h, first);
  zero_tile(gs, C, C, L::kLdC);
  __syncthreads();
  {
    Product<T, C, NP> y(scratch);
    y.zero();
    y.template add_product<NP, kRound, kTable>(gz, L::kLdN, 1, tb.basis, NP, 1);
    y.store(gy, L::kLdN);
    Product<T, C, C> g(scratch);  // grads of the skewed scores, stored as [i, s]
    g.zero();
    g.template add_product<NP, kRound, kTable>(gz, L::kLdN, 1, tb.h_t, C, 1);
    g.for_each([&](int i, int tau, float x) {
      if (tau <= i) gs[i * L::kLdC + (i - tau)] = x;
    });
  }
  __syncthreads();
  modal_rows<NP>(gy, L::kLdN, tb.alpha, tb.beta_t, tb.partner);  // through Bn's adjoint
  __syncthreads();
  {
    Product<T, C, D> gq(scratch);
    gq.zero();
    gq.template add_product<NP>(gy, L::kLdN, 1, keys.data, keys.ld, 1);
    gq.template add_product<C, kRound, kFromBf16>(gs, L::kLdC, 1, ks, L::kLdD, 1);
    gq.for_each(RowStore<T, D>{static_cast<T*>(args.grad_q), &s, b, h, first});
    Product<T, C, D> gk(scratch);
    gk.zero();
    gk.template add_product<C, kRound, kFromBf16>(gs, 1, L::kLdC, qs, L::kLdD, 1);
    gk.for_each(RowStore<T, D>{static_cast<T*>(args.grad_k), &s, b, h, first});
    Product<T, NP, D> gu(scratch);
    gu.zero();
    gu.template add_product<C, kRound, kFromBf16>(gy, 1, L::kLdN, qs, L::kLdD, 1);
    gu.store(args.grad_modal_keys + modal, D);
  }
}

template <typename T, int D, int NP>
cudaError_t launch(const BlaChunkArgs& args, cudaStream_t stream) {
  using L = BlaLayout<D, NP>;
  constexpr size_t scores_bytes = sizeof(float) * (2 * L::kTileD + L::kTileC + 3 * L::kTileN + L::kScratch);
  constexpr size_t inputs_bytes =
      sizeof(float) * (2 * L::kTileD + L::kTileC + 2 * L::kTileN + L::kScratch + kModalTileFloats<D, NP>);
  static_assert(fits_blocks_per_sm<D, NP>(scores_bytes) && fits_blocks_per_sm<D, NP>(inputs_bytes),
                "kChunkBlocksPerSm blocks fit an SM's shared memory");
  const dim3 grid = chunk_grid(args.shape);
  const cudaError_t err = launch_blocks(bla_chunk_backward_scores_kernel<T, D, NP>, scores_bytes, grid, stream, args);
  if (err != cudaSuccess) return err;
  return launch_blocks(bla_chunk_backward_inputs_kernel<T, D, NP>, inputs_bytes, grid, stream, args);
}

template <typename T>
cudaError_t dispatch(const BlaChunkArgs& args, cudaStream_t stream) {
  return for_compiled_shape(args.shape.dim, args.shape.padded,
                            [&](auto dim, auto padded) { return launch<T, dim(), padded()>(args, stream); });
}

}  // namespace

cudaError_t bla_chunk_backward_launch(const BlaChunkArgs& args, cudaStream_t stream) {
  if (args.dtype == BlaDtype::kBFloat16) return dispatch<__nv_bfloat16>(args, stream);
  return dispatch<float>(args, stream);
}

}  // namespace bla::kernels::detail
