// BLA chunk forward: one block per (chunk, head, batch), both passes of the
// chunked form fused (scores, mask, softmax, output), float32 in shared
// memory whatever the input dtype (bla_chunk_launch.h has the algorithm).
#include "bla_chunk_device.cuh"

namespace bla::kernels::detail {
namespace {

// The row stride of the value tiles (the chunk's values and the staged modal
// values), read only as the output product's row-major B: D + 8 (8 mod 32
// floats: that read's lanes hit banks 8t + g, one a bank, where every other
// tile's D + 4 would give 4t + g, two a bank). The forward reserves no
// per-warp scratch tile (MmaProduct and SimtProduct use none), so that two
// blocks an SM still fit at D = 64.
template <int D>
constexpr int kLdValues = D + 8;
template <int D>
constexpr int kValueTile = kBlaChunk * kLdValues<D>;  // >= BlaLayout's kTileD: the tile holds the keys first
template <int D, int NP>
constexpr int kModalValueFloats = kStageModal<D, NP> ? NP * kLdValues<D> : 0;

template <typename T, int D, int NP>
__global__ void __launch_bounds__(kBlaThreads, (kChunkBlocksPerSm<D, NP>)) bla_chunk_forward_kernel(BlaChunkArgs args) {
  using L = BlaLayout<D, NP>;
  constexpr int C = kBlaChunk;
  DEV_EXTERN_SHARED(float, smem);
  float* qs = smem;                // (C, D) queries
  float* kvs = qs + L::kTileD;     // (C, D) keys, then values (row stride kLdValues)
  float* lag = kvs + kValueTile<D>;  // (C, C) skewed scores, then token weights
  float* zs = lag + L::kTileC;     // (C, NP) scores, then probabilities
  float* ys = zs + L::kTileN;      // (C, NP) modal products
  float* us = ys + L::kTileN;      // (NP, D) modal keys, then values, where staged
  float* scratch = us;             // the products' scratch argument, which none of them uses here

  const BlaChunkShape& s = args.shape;
  const BlaChunkTablesView& tb = args.tables;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int first = c * C;
  const float* modal_keys = args.modal_keys + modal_offset(s, b, h, c);      // (NP, D)
  const float* modal_values = args.modal_values + modal_offset(s, b, h, c);  // (NP, D)

  prefetch_span(modal_keys, sizeof(float) * NP * D);
  prefetch_span(modal_values, sizeof(float) * NP * D);
  const size_t v_row = token_stride(args.v_row, s);
  prefetch_rows<T, D>(static_cast<const T*>(args.v), v_row, s, b, h, first);
  load_and_score<T, D, NP>(args, modal_operand<D, NP>(us, modal_keys), qs, kvs, lag, zs, ys, scratch, b, h, first);
  if (args.probabilities != nullptr)
    tile_to_dense<C, NP>(args.probabilities + score_offset(s, b, h, c), zs, L::kLdN);
  zero_tile(lag, C, C, L::kLdC);
  load_rows<T, D, kLdValues<D>>(kvs, static_cast<const T*>(args.v), v_row, s, b, h, first);  // keys are done
  const ModalOperand values = modal_operand<D, NP, kLdValues<D>>(us, modal_values);  // so are the modal keys
  __syncthreads();
  chunk_output_weights<T, D, NP>(tb, zs, ys, lag, scratch);

  Product<T, C, D> out(scratch);
  out.zero();
  out.template add_product<C, kRound, kFromBf16>(lag, L::kLdC, 1, kvs, kLdValues<D>, 1);
  out.template add_product<NP>(ys, L::kLdN, 1, values.data, values.ld, 1);
  out.for_each(RowStore<T, D>{static_cast<T*>(args.out), &s, b, h, first});
}

template <typename T, int D, int NP>
cudaError_t launch(const BlaChunkArgs& args, cudaStream_t stream) {
  using L = BlaLayout<D, NP>;
  constexpr size_t bytes = sizeof(float) * (L::kTileD + kValueTile<D> + L::kTileC + 2 * L::kTileN +
                                            kModalValueFloats<D, NP>);
  static_assert(fits_blocks_per_sm<D, NP>(bytes), "kChunkBlocksPerSm blocks fit an SM's shared memory");
  return launch_blocks(bla_chunk_forward_kernel<T, D, NP>, bytes, chunk_grid(args.shape), stream, args);
}

template <typename T>
cudaError_t dispatch(const BlaChunkArgs& args, cudaStream_t stream) {
  return for_compiled_shape(args.shape.dim, args.shape.padded,
                            [&](auto dim, auto padded) { return launch<T, dim(), padded()>(args, stream); });
}

}  // namespace

bool bla_chunk_shape_supported(int dim, int padded) {
  return for_compiled_shape(dim, padded, [](auto, auto) { return cudaSuccess; }) == cudaSuccess;
}

cudaError_t bla_chunk_forward_launch(const BlaChunkArgs& args, cudaStream_t stream) {
  if (args.dtype == BlaDtype::kBFloat16) return dispatch<__nv_bfloat16>(args, stream);
  return dispatch<float>(args, stream);
}

}  // namespace bla::kernels::detail
