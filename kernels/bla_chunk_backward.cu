// BLA chunk backward: one block per (chunk, head, batch). Recomputes the
// chunk's probabilities (cheaper than storing them), then the gradients of
// the chunk's own q, k, v and of its incoming modal slots; LibTorch's
// autograd carries the slot gradients back through the carry scan.
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

// Store (row, col, value) of an (NP x D) product into the modal-slot grads.
struct ModalStore {
  float* x;
  int dim;
  __device__ __forceinline__ void operator()(int m, int d, float value) const { x[m * dim + d] = value; }
};

template <typename T, int D, int NP>
__global__ void __launch_bounds__(kBlaThreads) bla_chunk_backward_kernel(BlaChunkArgs args) {
  using L = BlaLayout<D, NP>;
  constexpr int C = kBlaChunk;
  extern __shared__ __align__(128) float smem[];
  float* qs = smem;              // (C, D) queries
  float* kvs = qs + L::kTileD;   // (C, D) keys, values, keys again
  float* dos = kvs + L::kTileD;  // (C, D) output grads
  float* lag = dos + L::kTileD;  // (C, C) skewed scores, then skewed grads of the token weights
  float* tw = lag + L::kTileC;   // (C, C) token weights, then score grads [i, s]
  float* zs = tw + L::kTileC;    // (C, NP) probabilities
  float* ys = zs + L::kTileN;    // (C, NP) modal products, then modal output weights
  float* g1 = ys + L::kTileN;    // (C, NP) grads of modal output weights, then of modal products
  float* g2 = g1 + L::kTileN;    // (C, NP) grads of probabilities, then of scores
  float* scratch = g2 + L::kTileN;  // per-warp 16 x 16 (tensor-core epilogues)

  const BlaChunkShape& s = args.shape;
  const BlaChunkTablesView& tb = args.tables;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int first = c * C;
  const size_t modal = modal_offset(s, b, h, c);
  const float* modal_keys = args.modal_keys + modal;
  const float* modal_values = args.modal_values + modal;

  load_rows<T, D>(qs, static_cast<const T*>(args.q), s, b, h, first);
  load_rows<T, D>(kvs, static_cast<const T*>(args.k), s, b, h, first);
  load_rows<T, D>(dos, static_cast<const T*>(args.grad_out), s, b, h, first);
  zero_tile(lag, C, C, L::kLdC);
  zero_tile(tw, C, C, L::kLdC);
  __syncthreads();

  // ---- the forward again, up to the probabilities and output weights ----
  {
    Product<T, C, C> acc(scratch);
    acc.zero();
    acc.template add_product<D>(qs, L::kLdD, 1, kvs, 1, L::kLdD);
    acc.for_each([&](int i, int j, float x) {
      if (j <= i) lag[i * L::kLdC + (i - j)] = x;
    });
  }
  __syncthreads();
  load_rows<T, D>(kvs, static_cast<const T*>(args.v), s, b, h, first);
  {
    Product<T, C, NP> score(scratch);
    score.zero();
    score.template add_product<C>(lag, L::kLdC, 1, tb.h, NP, 1);
    Product<T, C, NP> y(scratch);
    y.zero();
    y.template add_product<D>(qs, L::kLdD, 1, modal_keys, 1, D);
    y.for_each([&](int i, int m, float x) { ys[i * L::kLdN + m] = x; });
    __syncthreads();
    modal_rows<NP>(ys, L::kLdN, tb.alpha, tb.beta, tb.partner);
    __syncthreads();
    score.template add_product<NP>(ys, L::kLdN, 1, tb.basis_t, NP, 1);
    score.for_each([&](int i, int j, float x) { zs[i * L::kLdN + j] = x * s.scale; });
  }
  __syncthreads();
  softmax_rows<NP>(zs, L::kLdN, s, first);
  zero_tile(lag, C, C, L::kLdC);
  __syncthreads();
  {
    Product<T, C, NP> x(scratch);
    x.zero();
    x.template add_product<NP>(zs, L::kLdN, 1, tb.basis, NP, 1);
    x.for_each([&](int i, int m, float value) { ys[i * L::kLdN + m] = value; });
    Product<T, C, C> w(scratch);
    w.zero();
    w.template add_product<NP>(zs, L::kLdN, 1, tb.h_t, C, 1);
    w.for_each([&](int i, int tau, float value) {
      if (tau <= i) tw[i * L::kLdC + (i - tau)] = value;
    });
  }
  __syncthreads();
  modal_rows<NP>(ys, L::kLdN, tb.alpha, tb.beta_t, tb.partner);  // ys: modal output weights

  // ---- grads of the probabilities ----
  {
    Product<T, C, NP> gx(scratch);
    gx.zero();
    gx.template add_product<D>(dos, L::kLdD, 1, modal_values, 1, D);
    gx.for_each([&](int i, int m, float x) { g1[i * L::kLdN + m] = x; });
  }
  __syncthreads();
  modal_rows<NP>(g1, L::kLdN, tb.alpha, tb.beta, tb.partner);  // through Bn^T's adjoint
  {
    Product<T, C, C> gw(scratch);  // grads of the token weights [i, s], stored skewed
    gw.zero();
    gw.template add_product<D>(dos, L::kLdD, 1, kvs, 1, L::kLdD);
    gw.for_each([&](int i, int j, float x) {
      if (j <= i) lag[i * L::kLdC + (i - j)] = x;
    });
  }
  __syncthreads();
  {
    Product<T, C, NP> gp(scratch);
    gp.zero();
    gp.template add_product<NP>(g1, L::kLdN, 1, tb.basis_t, NP, 1);
    gp.template add_product<C>(lag, L::kLdC, 1, tb.h, NP, 1);
    gp.for_each([&](int i, int j, float x) { g2[i * L::kLdN + j] = x; });
  }

  // ---- grads of v and of the modal values (need no more syncs) ----
  {
    Product<T, C, D> gv(scratch);
    gv.zero();
    gv.template add_product<C>(tw, 1, L::kLdC, dos, L::kLdD, 1);
    gv.for_each(RowStore<T, D>{static_cast<T*>(args.grad_v), &s, b, h, first});
    Product<T, NP, D> gu(scratch);
    gu.zero();
    gu.template add_product<C>(ys, 1, L::kLdN, dos, L::kLdD, 1);
    gu.for_each(ModalStore{args.grad_modal_values + modal, D});
  }
  __syncthreads();

  // ---- grads of the scores, then of q, k and the modal keys ----
  softmax_backward_rows<NP>(zs, g2, L::kLdN, s.scale);
  zero_tile(tw, C, C, L::kLdC);
  load_rows<T, D>(kvs, static_cast<const T*>(args.k), s, b, h, first);
  __syncthreads();
  {
    Product<T, C, NP> gy(scratch);
    gy.zero();
    gy.template add_product<NP>(g2, L::kLdN, 1, tb.basis, NP, 1);
    gy.for_each([&](int i, int m, float x) { g1[i * L::kLdN + m] = x; });
    Product<T, C, C> gs(scratch);  // grads of the skewed scores, stored as [i, s]
    gs.zero();
    gs.template add_product<NP>(g2, L::kLdN, 1, tb.h_t, C, 1);
    gs.for_each([&](int i, int tau, float x) {
      if (tau <= i) tw[i * L::kLdC + (i - tau)] = x;
    });
  }
  __syncthreads();
  modal_rows<NP>(g1, L::kLdN, tb.alpha, tb.beta_t, tb.partner);  // through Bn's adjoint
  __syncthreads();
  {
    Product<T, C, D> gq(scratch);
    gq.zero();
    gq.template add_product<NP>(g1, L::kLdN, 1, modal_keys, D, 1);
    gq.template add_product<C>(tw, L::kLdC, 1, kvs, L::kLdD, 1);
    gq.for_each(RowStore<T, D>{static_cast<T*>(args.grad_q), &s, b, h, first});
    Product<T, C, D> gk(scratch);
    gk.zero();
    gk.template add_product<C>(tw, 1, L::kLdC, qs, L::kLdD, 1);
    gk.for_each(RowStore<T, D>{static_cast<T*>(args.grad_k), &s, b, h, first});
    Product<T, NP, D> gu(scratch);
    gu.zero();
    gu.template add_product<C>(g1, 1, L::kLdN, qs, L::kLdD, 1);
    gu.for_each(ModalStore{args.grad_modal_keys + modal, D});
  }
}

template <typename T, int D, int NP>
cudaError_t launch(const BlaChunkArgs& args, cudaStream_t stream) {
  using L = BlaLayout<D, NP>;
  constexpr size_t bytes = sizeof(float) * (3 * L::kTileD + 2 * L::kTileC + 4 * L::kTileN + L::kScratch);
  static_assert(bytes <= 232448, "fits one block per SM (227 KB)");
  auto kernel = bla_chunk_backward_kernel<T, D, NP>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) return err;
  const dim3 grid(args.shape.chunks, args.shape.heads, args.shape.batch);
  kernel<<<grid, kBlaThreads, bytes, stream>>>(args);
  return cudaGetLastError();
}

template <typename T>
cudaError_t dispatch(const BlaChunkArgs& args, cudaStream_t stream) {
  const int d = args.shape.dim, np = args.shape.padded;
  if (d == 64 && np == 64) return launch<T, 64, 64>(args, stream);
  if (d == 64 && np == 128) return launch<T, 64, 128>(args, stream);
  if (d == 128 && np == 64) return launch<T, 128, 64>(args, stream);
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t bla_chunk_backward_launch(const BlaChunkArgs& args, cudaStream_t stream) {
  if (args.dtype == BlaDtype::kBFloat16) return dispatch<__nv_bfloat16>(args, stream);
  return dispatch<float>(args, stream);
}

}  // namespace bla::kernels::detail
