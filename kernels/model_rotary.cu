// Rotary position embedding, rotate-half form (src/bla/mixers/common/heads.cpp,
// apply_rotary), for queries and keys in one launch. For pair i < D/2 of a
// head at position p = start + t:
//   angle = p * inv_freq_i,  inv_freq_i = base^(-2i/D)   (both float32, as the
//   LibTorch form computes its tables),
//   out[i] = x[i] cos - x[i + D/2] sin,  out[i + D/2] = x[i + D/2] cos + x[i] sin.
// The backward is the rotation by -angle (inverse = true).
//
// One block per token: it computes the D/2 angles' cos and sin once into
// shared memory, then rotates every head of both tensors. The angle's sine
// and cosine are taken in double precision: the library builds with
// --use_fast_math, which would turn sincosf into the approximate __sincosf,
// far off for the angles of late positions (8192 rad and more); the cost is
// D/2 evaluations per token, shared by all heads.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "model_device.cuh"
#include "model_launch.h"

namespace bla::kernels::detail {
namespace {

constexpr int kThreads = 128;

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads) rotary_kernel(RotaryArgs a) {
  extern __shared__ float table[];  // cos of pair i at [i], (signed) sin at [half + i]
  const int half = a.dim / 2;
  const int64_t token = blockIdx.x;
  const int64_t t = token % a.seq;
  const float position = static_cast<float>(a.start + t);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    // The LibTorch form: -arange(0, D, 2) / D, then pow(base, .), in float32.
    const float exponent = __fdiv_rn(-static_cast<float>(2 * i), static_cast<float>(a.dim));
    const float inv_freq = static_cast<float>(pow(static_cast<double>(a.base), static_cast<double>(exponent)));
    const float angle = __fmul_rn(position, inv_freq);
    double s, c;
    sincos(static_cast<double>(angle), &s, &c);
    table[i] = static_cast<float>(c);
    table[half + i] = a.inverse ? -static_cast<float>(s) : static_cast<float>(s);
  }
  __syncthreads();

  const int words = half / VEC;
  const int items = (a.heads_a + a.heads_b) * words;
  for (int item = threadIdx.x; item < items; item += blockDim.x) {
    int head = item / words;
    const int word = item - head * words;
    const T* src;
    T* dst;
    if (head < a.heads_a) {
      const int64_t offset = (token * a.heads_a + head) * a.dim;
      src = static_cast<const T*>(a.a) + offset;
      dst = static_cast<T*>(a.out_a) + offset;
    } else {
      head -= a.heads_a;
      const int64_t offset = (token * a.heads_b + head) * a.dim;
      src = static_cast<const T*>(a.b) + offset;
      dst = static_cast<T*>(a.out_b) + offset;
    }
    const int i0 = word * VEC;
    float lo[VEC], hi[VEC], out_lo[VEC], out_hi[VEC];
    load_floats<T, VEC>(src + i0, lo);
    load_floats<T, VEC>(src + half + i0, hi);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const float c = table[i0 + j], s = table[half + i0 + j];
      out_lo[j] = lo[j] * c - hi[j] * s;
      out_hi[j] = hi[j] * c + lo[j] * s;
    }
    store_floats<T, VEC>(dst + i0, out_lo);
    store_floats<T, VEC>(dst + half + i0, out_hi);
  }
}

}  // namespace

cudaError_t rotary_launch(const RotaryArgs& a, cudaStream_t stream) {
  if (a.tokens <= 0 || a.heads_a + a.heads_b <= 0) return cudaSuccess;
  if (a.dim < 2 || a.dim % 2 != 0 || a.dim > kRotaryMaxDim || a.seq < 1 || a.tokens > 0x7fffffffLL)
    return cudaErrorInvalidValue;
  if (a.heads_b > 0 && (a.b == nullptr || a.out_b == nullptr)) return cudaErrorInvalidValue;
  const bool bf16 = a.dtype == ModelDtype::kBFloat16;
  const int word = bf16 ? 8 : 4;
  bool vector = (a.dim / 2) % word == 0 && aligned_16(a.a) && aligned_16(a.out_a);
  if (a.heads_b > 0) vector = vector && aligned_16(a.b) && aligned_16(a.out_b);
  const int half = a.dim / 2;
  const int items = (a.heads_a + a.heads_b) * (vector ? half / word : half);
  const int threads = std::min(kThreads, std::max(32, (items + 31) / 32 * 32));
  const dim3 grid(static_cast<unsigned>(a.tokens));
  const size_t shared = static_cast<size_t>(a.dim) * sizeof(float);
  if (bf16) {
    if (vector) rotary_kernel<__nv_bfloat16, 8><<<grid, threads, shared, stream>>>(a);
    else rotary_kernel<__nv_bfloat16, 1><<<grid, threads, shared, stream>>>(a);
  } else {
    if (vector) rotary_kernel<float, 4><<<grid, threads, shared, stream>>>(a);
    else rotary_kernel<float, 1><<<grid, threads, shared, stream>>>(a);
  }
  return cudaGetLastError();
}

}  // namespace bla::kernels::detail
