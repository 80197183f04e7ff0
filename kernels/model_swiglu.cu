// SwiGLU's elementwise part (src/bla/model/lm.cpp, SwiGLUImpl): h = silu(g) * u
// with silu(g) = g * sigmoid(g), forward and backward, in float32 arithmetic:
//   dg = dh * u * s * (1 + g * (1 - s)),  du = dh * g * s,  s = sigmoid(g).
// One pass over the elements in 16-byte words (grid-stride), single elements
// for a tail or when a pointer is not 16-byte aligned. Gate and up are two
// tensors, or the two halves of every row of one joined product (the MLP's
// gate and up projections as one matrix product): SwigluArgs::in_stride.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "model_device.cuh"
#include "model_launch.h"

namespace bla::kernels::detail {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float sigmoid(float g) { return 1.f / (1.f + __expf(-g)); }

// Where element i of h has its gate and up: i itself, or in a joined product's row.
__device__ __forceinline__ int64_t input_offset(const SwigluArgs& a, int64_t i) {
  if (a.in_stride == a.width) return i;
  const int64_t row = i / a.width;
  return row * a.in_stride + (i - row * a.width);
}

template <typename T, int VEC>
__device__ __forceinline__ void swiglu_forward_word(const SwigluArgs& a, int64_t i) {
  float g[VEC], u[VEC], h[VEC];
  const int64_t k = input_offset(a, i);
  load_floats<T, VEC>(static_cast<const T*>(a.gate) + k, g);
  load_floats<T, VEC>(static_cast<const T*>(a.up) + k, u);
#pragma unroll
  for (int j = 0; j < VEC; ++j) h[j] = g[j] * sigmoid(g[j]) * u[j];
  store_floats<T, VEC>(static_cast<T*>(a.h) + i, h);
}

template <typename T, int VEC>
__device__ __forceinline__ void swiglu_backward_word(const SwigluArgs& a, int64_t i) {
  float g[VEC], u[VEC], dh[VEC], dg[VEC], du[VEC];
  const int64_t k = input_offset(a, i);
  load_floats<T, VEC>(static_cast<const T*>(a.gate) + k, g);
  load_floats<T, VEC>(static_cast<const T*>(a.up) + k, u);
  load_floats<T, VEC>(static_cast<const T*>(a.grad_h) + i, dh);
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    const float s = sigmoid(g[j]);
    du[j] = dh[j] * g[j] * s;
    dg[j] = dh[j] * u[j] * s * (1.f + g[j] * (1.f - s));
  }
  store_floats<T, VEC>(static_cast<T*>(a.grad_gate) + k, dg);
  store_floats<T, VEC>(static_cast<T*>(a.grad_up) + k, du);
}

// Words of VEC elements cover [0, n / VEC * VEC); single elements the rest
// (a joined product's rows split into whole words, or VEC is 1).
template <typename T, int VEC, bool kBackward>
__global__ void __launch_bounds__(kThreads) swiglu_kernel(SwigluArgs a) {
  const int64_t words = a.n / VEC;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t w = first; w < words; w += stride) {
    if constexpr (kBackward) swiglu_backward_word<T, VEC>(a, w * VEC);
    else swiglu_forward_word<T, VEC>(a, w * VEC);
  }
  for (int64_t i = words * VEC + first; i < a.n; i += stride) {
    if constexpr (kBackward) swiglu_backward_word<T, 1>(a, i);
    else swiglu_forward_word<T, 1>(a, i);
  }
}

template <bool kBackward>
cudaError_t launch(const SwigluArgs& a, int sm_count, cudaStream_t stream) {
  if (a.n <= 0) return cudaSuccess;
  if (a.width <= 0 || a.n % a.width != 0 || a.in_stride < a.width) return cudaErrorInvalidValue;
  const bool bf16 = a.dtype == ModelDtype::kBFloat16;
  const int vec_words = bf16 ? 8 : 4;
  // Words must not cross a joined product's rows.
  bool aligned = aligned_16(a.gate) && aligned_16(a.up) && (a.in_stride == a.width || a.width % vec_words == 0);
  for (const void* p : {a.grad_h, static_cast<const void*>(a.h), static_cast<const void*>(a.grad_gate),
                        static_cast<const void*>(a.grad_up)})
    if (p != nullptr && !aligned_16(p)) aligned = false;
  const int vec = aligned ? vec_words : 1;
  const int64_t items = (a.n + vec - 1) / vec;
  const int64_t wanted = (items + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(wanted, std::max(1, sm_count) * 8LL)));
  if (bf16) {
    if (vec == 8) swiglu_kernel<__nv_bfloat16, 8, kBackward><<<blocks, kThreads, 0, stream>>>(a);
    else swiglu_kernel<__nv_bfloat16, 1, kBackward><<<blocks, kThreads, 0, stream>>>(a);
  } else {
    if (vec == 4) swiglu_kernel<float, 4, kBackward><<<blocks, kThreads, 0, stream>>>(a);
    else swiglu_kernel<float, 1, kBackward><<<blocks, kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t swiglu_forward_launch(const SwigluArgs& a, int sm_count, cudaStream_t stream) {
  return launch<false>(a, sm_count, stream);
}
cudaError_t swiglu_backward_launch(const SwigluArgs& a, int sm_count, cudaStream_t stream) {
  return launch<true>(a, sm_count, stream);
}

}  // namespace bla::kernels::detail
