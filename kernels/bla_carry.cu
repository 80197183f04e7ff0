// The carry of the BLA chunked form in the modal basis (bla_chunk_launch.h,
// BlaCarryArgs): the slots before every chunk, and their backward. One block
// per (16 columns, head, batch) walks the chunks in order (reverse order
// backward); B^C is the per-mode row op of bla_chunk_device.cuh with row C-1
// of the tables, so a step costs one (NP x 64) by (64 x 16) product.
#include "bla_chunk_device.cuh"

namespace bla::kernels::detail {
namespace {

constexpr int kCarryColumns = 16;

template <typename T, int NP>
__global__ void __launch_bounds__(kBlaThreads) bla_carry_forward_kernel(BlaCarryArgs args) {
  constexpr int C = kBlaChunk, DS = kCarryColumns, kPer = NP * DS / kBlaThreads;
  __shared__ float us[NP * DS];  // U_c, this block's columns
  __shared__ float xs[C * DS];   // the chunk's tokens, this block's columns
  const BlaChunkShape& s = args.shape;
  const BlaChunkTablesView& tb = args.tables;
  const int d0 = blockIdx.x * DS, h = blockIdx.y, b = blockIdx.z;
  const float* alpha = tb.alpha + (C - 1) * NP;
  const float* beta = tb.beta + (C - 1) * NP;
  const T* x = static_cast<const T*>(args.x);
  for (int e = threadIdx.x; e < NP * DS; e += kBlaThreads) us[e] = 0.f;
  for (int c = 0; c < s.chunks; ++c) {
    __syncthreads();
    float* out = args.modal + modal_offset(s, b, h, c);
    for (int e = threadIdx.x; e < NP * DS; e += kBlaThreads) out[(e / DS) * s.dim + d0 + e % DS] = us[e];
    for (int e = threadIdx.x; e < C * DS; e += kBlaThreads) {
      const int t = c * C + e / DS;
      xs[e] = t < s.seq ? to_float(x[((static_cast<size_t>(b) * s.seq + t) * s.heads + h) * s.dim + d0 + e % DS])
                        : 0.f;
    }
    __syncthreads();
    float next[kPer];
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int e = threadIdx.x + kBlaThreads * u, m = e / DS, j = e % DS;
      float g = 0.f;
#pragma unroll 8
      for (int r = 0; r < C; ++r) g = fmaf(tb.inject[m * C + r], xs[r * DS + j], g);
      next[u] = alpha[m] * us[e] + beta[m] * us[tb.partner[m] * DS + j] + g;
    }
    __syncthreads();
#pragma unroll
    for (int u = 0; u < kPer; ++u) us[threadIdx.x + kBlaThreads * u] = next[u];
  }
}

template <int NP>
__global__ void __launch_bounds__(kBlaThreads) bla_carry_backward_kernel(BlaCarryArgs args) {
  constexpr int C = kBlaChunk, DS = kCarryColumns, kPer = NP * DS / kBlaThreads;
  __shared__ float es[NP * DS];  // E_{c+1}: the grad of the slots after chunk c
  const BlaChunkShape& s = args.shape;
  const BlaChunkTablesView& tb = args.tables;
  const int d0 = blockIdx.x * DS, h = blockIdx.y, b = blockIdx.z;
  const float* alpha = tb.alpha + (C - 1) * NP;
  const float* beta_t = tb.beta_t + (C - 1) * NP;
  for (int e = threadIdx.x; e < NP * DS; e += kBlaThreads) es[e] = 0.f;
  for (int c = s.chunks - 1; c >= 0; --c) {
    __syncthreads();
    for (int e = threadIdx.x; e < C * DS; e += kBlaThreads) {
      const int r = e / DS, j = e % DS, t = c * C + r;
      if (t >= s.seq) continue;
      float g = 0.f;
#pragma unroll 8
      for (int m = 0; m < NP; ++m) g = fmaf(tb.inject[m * C + r], es[m * DS + j], g);
      args.grad_x[((static_cast<size_t>(b) * s.seq + t) * s.heads + h) * s.dim + d0 + j] = g;
    }
    const float* grad = args.grad_modal + modal_offset(s, b, h, c);
    float next[kPer];
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int e = threadIdx.x + kBlaThreads * u, m = e / DS, j = e % DS;
      next[u] = grad[m * s.dim + d0 + j] + alpha[m] * es[e] + beta_t[m] * es[tb.partner[m] * DS + j];
    }
    __syncthreads();
#pragma unroll
    for (int u = 0; u < kPer; ++u) es[threadIdx.x + kBlaThreads * u] = next[u];
  }
}

dim3 carry_grid(const BlaChunkShape& s) { return dim3(s.dim / kCarryColumns, s.heads, s.batch); }

template <typename T>
cudaError_t forward_for(const BlaCarryArgs& args, cudaStream_t stream) {
  if (args.shape.padded == 64)
    bla_carry_forward_kernel<T, 64><<<carry_grid(args.shape), kBlaThreads, 0, stream>>>(args);
  else if (args.shape.padded == 128)
    bla_carry_forward_kernel<T, 128><<<carry_grid(args.shape), kBlaThreads, 0, stream>>>(args);
  else
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

}  // namespace

cudaError_t bla_carry_forward_launch(const BlaCarryArgs& args, cudaStream_t stream) {
  if (args.dtype == BlaDtype::kBFloat16) return forward_for<__nv_bfloat16>(args, stream);
  return forward_for<float>(args, stream);
}

cudaError_t bla_carry_backward_launch(const BlaCarryArgs& args, cudaStream_t stream) {
  if (args.shape.padded == 64)
    bla_carry_backward_kernel<64><<<carry_grid(args.shape), kBlaThreads, 0, stream>>>(args);
  else if (args.shape.padded == 128)
    bla_carry_backward_kernel<128><<<carry_grid(args.shape), kBlaThreads, 0, stream>>>(args);
  else
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

}  // namespace bla::kernels::detail
