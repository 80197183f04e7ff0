// Rotary position embedding, rotate-half form (src/bla/mixers/common/heads.cpp,
// apply_rotary), for queries and keys in one launch. For pair i < D/2 of a
// head at position p = start + t:
//   angle = p * inv_freq_i,  inv_freq_i = base^(-2i/D)   (both float32, as the
//   LibTorch form computes its tables),
//   out[i] = x[i] cos - x[i + D/2] sin,  out[i + D/2] = x[i + D/2] cos + x[i] sin.
// The backward is the rotation by -angle (inverse = true).
//
// A first kernel computes the (seq, D/2) angles' cos and sin once into a
// table (the same for every sequence of the batch); the second rotates every
// head of every token in 16-byte words, reading its row of the table. The
// angle's sine and cosine are taken in double precision: the library builds
// with --use_fast_math, which would turn sincosf into the approximate
// __sincosf, far off for the angles of late positions (8192 rad and more).
// Inputs may be views whose tokens are evenly spaced with their heads side by
// side (queries and keys as views of one joined q, k, v product): no copy.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "model_device.cuh"
#include "model_launch.h"

namespace bla::kernels::detail {
namespace {

constexpr int kThreads = 256;

// Row t of the table: cos of pair i at [t * dim + i], (signed) sin at [t * dim + half + i].
__global__ void __launch_bounds__(kThreads) rotary_table_kernel(RotaryArgs a) {
  const int half = a.dim / 2;
  const int64_t entries = static_cast<int64_t>(a.seq) * half;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < entries;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / half;
    const int i = static_cast<int>(e - t * half);
    const float position = static_cast<float>(a.start + t);
    // The LibTorch form: -arange(0, D, 2) / D, then pow(base, .), in float32.
    const float exponent = __fdiv_rn(-static_cast<float>(2 * i), static_cast<float>(a.dim));
    const float inv_freq = static_cast<float>(pow(static_cast<double>(a.base), static_cast<double>(exponent)));
    const float angle = __fmul_rn(position, inv_freq);
    double s, c;
    sincos(static_cast<double>(angle), &s, &c);
    a.table[t * a.dim + i] = static_cast<float>(c);
    a.table[t * a.dim + half + i] = a.inverse ? -static_cast<float>(s) : static_cast<float>(s);
  }
}

// One item: a word of VEC pairs of one head of one token.
template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads) rotary_kernel(RotaryArgs a) {
  const int half = a.dim / 2;
  const int words = half / VEC;
  const int heads = a.heads_a + a.heads_b;
  const int64_t items = a.tokens * heads * words;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; item < items;
       item += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t rest = item / words;
    const int word = static_cast<int>(item - rest * words);
    const int64_t token = rest / heads;
    int head = static_cast<int>(rest - token * heads);
    const T* src;
    T* dst;
    if (head < a.heads_a) {
      src = static_cast<const T*>(a.a) + token * a.stride_a + static_cast<int64_t>(head) * a.dim;
      dst = static_cast<T*>(a.out_a) + (token * a.heads_a + head) * a.dim;
    } else {
      head -= a.heads_a;
      src = static_cast<const T*>(a.b) + token * a.stride_b + static_cast<int64_t>(head) * a.dim;
      dst = static_cast<T*>(a.out_b) + (token * a.heads_b + head) * a.dim;
    }
    const float* row = a.table + (token % a.seq) * a.dim;
    const int i0 = word * VEC;
    float lo[VEC], hi[VEC], c[VEC], s[VEC], out_lo[VEC], out_hi[VEC];
    load_floats<T, VEC>(src + i0, lo);
    load_floats<T, VEC>(src + half + i0, hi);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      c[j] = row[i0 + j];
      s[j] = row[half + i0 + j];
    }
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      out_lo[j] = lo[j] * c[j] - hi[j] * s[j];
      out_hi[j] = hi[j] * c[j] + lo[j] * s[j];
    }
    store_floats<T, VEC>(dst + i0, out_lo);
    store_floats<T, VEC>(dst + half + i0, out_hi);
  }
}

int grid_for(int64_t items) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads, 1 << 16)));
}

}  // namespace

cudaError_t rotary_launch(const RotaryArgs& a, cudaStream_t stream) {
  if (a.tokens <= 0 || a.heads_a + a.heads_b <= 0) return cudaSuccess;
  if (a.dim < 2 || a.dim % 2 != 0 || a.dim > kRotaryMaxDim || a.seq < 1 || a.table == nullptr)
    return cudaErrorInvalidValue;
  if (a.stride_a < static_cast<int64_t>(a.heads_a) * a.dim) return cudaErrorInvalidValue;
  if (a.heads_b > 0 && (a.b == nullptr || a.out_b == nullptr || a.stride_b < static_cast<int64_t>(a.heads_b) * a.dim))
    return cudaErrorInvalidValue;
  const bool bf16 = a.dtype == ModelDtype::kBFloat16;
  const int word = bf16 ? 8 : 4;
  const int bytes = bf16 ? 2 : 4;
  bool vector = (a.dim / 2) % word == 0 && aligned_16(a.a) && aligned_16(a.out_a) && (a.stride_a * bytes) % 16 == 0;
  if (a.heads_b > 0) vector = vector && aligned_16(a.b) && aligned_16(a.out_b) && (a.stride_b * bytes) % 16 == 0;
  const int half = a.dim / 2;
  rotary_table_kernel<<<grid_for(static_cast<int64_t>(a.seq) * half), kThreads, 0, stream>>>(a);
  if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
  const int64_t items = a.tokens * (a.heads_a + a.heads_b) * (vector ? half / word : half);
  const int grid = grid_for(items);
  if (bf16) {
    if (vector) rotary_kernel<__nv_bfloat16, 8><<<grid, kThreads, 0, stream>>>(a);
    else rotary_kernel<__nv_bfloat16, 1><<<grid, kThreads, 0, stream>>>(a);
  } else {
    if (vector) rotary_kernel<float, 4><<<grid, kThreads, 0, stream>>>(a);
    else rotary_kernel<float, 1><<<grid, kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

}  // namespace bla::kernels::detail
