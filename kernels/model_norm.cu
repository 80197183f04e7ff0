// RMSNorm forward and backward (src/bla/model/lm.cpp, RMSNormImpl):
//   r = rsqrt(mean(x^2) + eps) in float32, y = cast_y(cast(x * r) * cast(w)),
// cast = rounding to x's dtype, as the LibTorch form does; cast_y rounds to y's
// dtype (x's, or bf16 where a float32 x feeds a bf16 product).
//
// A group of threads (one warp or more) owns whole rows, one at a time, and
// each of its threads the same columns of every row (up to 16 elements, in
// 16- or 8-byte words when the row allows): the weight stays in registers, a
// row's sum is one group reduction, and in the backward each thread sums its
// columns' weight gradient over its group's rows in registers. A block holds
// several groups when rows are narrow (a 128-wide float32 row is one warp's
// work, and a block of one warp would leave most of an SM idle). The groups'
// sums meet in shared memory, and the blocks' (blocks, dim) float32 partials
// are then summed in a fixed order by a second small kernel: no atomics, the
// same bits every run. An ensemble's members (RmsNorm*Args::members) are the
// grid's y dimension: each member's blocks do exactly what a solo launch on
// its rows does.
//
// Backward, with dn = dy * w (float32):
//   dx = r * dn - x * r^3 * mean(dn * x),   dw = sum over rows of dy * cast(x * r).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "model_device.cuh"
#include "model_launch.h"

namespace bla::kernels::detail {
namespace {

constexpr int kMaxThreads = 512;
constexpr int kMaxElementsPerThread = 16;
constexpr int kBlockThreads = 256;  // groups of narrow rows fill a block of this many threads

// The columns thread t of its group owns: words t, t + group, ... of VEC
// elements, up to CHUNKS of them (1 where a row is at most one word a thread).
// T: x's type, W: the weight's, Y: y's (and grad_y's), R: the residual's.
template <typename T, typename W, typename Y, typename R, int VEC, int CHUNKS>
__global__ void __launch_bounds__(kMaxThreads) rms_norm_forward_kernel(RmsNormForwardArgs a, int group) {
  constexpr int kChunks = CHUNKS;
  __shared__ float scratch[32];
  const int nvec = a.dim / VEC;
  const float inv_dim = __frcp_rn(static_cast<float>(a.dim));
  const int groups = blockDim.x / group, g = threadIdx.x / group, t = threadIdx.x % group;
  const int64_t member = blockIdx.y;
  const T* x = static_cast<const T*>(a.x) + member * a.rows * a.dim;
  Y* y = static_cast<Y*>(a.y) + member * a.rows * a.dim;
  const W* wp = static_cast<const W*>(a.w) + member * a.dim;
  float* rstd = a.rstd + member * a.rows;
  const bool residual = a.res != nullptr;
  const R* res = static_cast<const R*>(a.res) + member * a.rows * a.dim;
  T* x_out = static_cast<T*>(a.x_out) + member * a.rows * a.dim;

  float w[kChunks][VEC];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int vi = t + c * group;
    if (vi < nvec) {
      load_floats<W, VEC>(wp + vi * VEC, w[c]);
#pragma unroll
      for (int j = 0; j < VEC; ++j) w[c][j] = round_to<T>(w[c][j]);
    }
  }

  // Every thread runs the same iterations (group_sum synchronises the block).
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * groups; first < a.rows;
       first += static_cast<int64_t>(gridDim.x) * groups) {
    const int64_t row = first + g;
    const bool live = row < a.rows;
    const T* xr = x + row * a.dim;
    float xv[kChunks][VEC];
    float squares = 0.f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int vi = t + c * group;
      if (live && vi < nvec) {
        load_floats<T, VEC>(xr + vi * VEC, xv[c]);
        if (residual) {
          float rv[VEC];
          load_floats<R, VEC>(res + row * a.dim + vi * VEC, rv);
#pragma unroll
          for (int j = 0; j < VEC; ++j) xv[c][j] = round_to<T>(xv[c][j] + rv[j]);
          store_floats<T, VEC>(x_out + row * a.dim + vi * VEC, xv[c]);
        }
#pragma unroll
        for (int j = 0; j < VEC; ++j) squares += xv[c][j] * xv[c][j];
      }
    }
    const float r = rsqrtf(group_sum(squares, group, scratch) * inv_dim + a.eps);
    if (!live) continue;
    Y* yr = y + row * a.dim;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int vi = t + c * group;
      if (vi < nvec) {
        float out[VEC];
#pragma unroll
        for (int j = 0; j < VEC; ++j) out[j] = round_to<T>(xv[c][j] * r) * w[c][j];
        store_floats<Y, VEC>(yr + vi * VEC, out);
      }
    }
    if (t == 0) rstd[row] = r;
  }
}

// Dynamic shared memory: groups * dim floats when a block holds several groups
// (their weight-gradient sums meet there), else none.
template <typename T, typename W, typename Y, typename R, int VEC, int CHUNKS>
__global__ void __launch_bounds__(kMaxThreads) rms_norm_backward_kernel(RmsNormBackwardArgs a, int group) {
  constexpr int kChunks = CHUNKS;
  __shared__ float scratch[32];
  extern __shared__ float group_acc[];
  const int nvec = a.dim / VEC;
  const float inv_dim = __frcp_rn(static_cast<float>(a.dim));
  const int groups = blockDim.x / group, g = threadIdx.x / group, t = threadIdx.x % group;
  const int64_t member = blockIdx.y;
  const T* x = static_cast<const T*>(a.x) + member * a.rows * a.dim;
  const Y* gy = static_cast<const Y*>(a.grad_y) + member * a.rows * a.dim;
  T* gx = static_cast<T*>(a.grad_x) + member * a.rows * a.dim;
  const W* wp = static_cast<const W*>(a.w) + member * a.dim;
  const float* rstd = a.rstd + member * a.rows;
  const bool weight_grad = a.grad_w_partial != nullptr;
  const T* gxo = a.grad_x_out == nullptr ? nullptr : static_cast<const T*>(a.grad_x_out) + member * a.rows * a.dim;
  R* grad_res = a.grad_res == nullptr ? nullptr : static_cast<R*>(a.grad_res) + member * a.rows * a.dim;

  float w[kChunks][VEC], acc[kChunks][VEC];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int vi = t + c * group;
#pragma unroll
    for (int j = 0; j < VEC; ++j) acc[c][j] = 0.f;
    if (vi < nvec) {
      load_floats<W, VEC>(wp + vi * VEC, w[c]);
#pragma unroll
      for (int j = 0; j < VEC; ++j) w[c][j] = round_to<T>(w[c][j]);
    }
  }

  for (int64_t first = static_cast<int64_t>(blockIdx.x) * groups; first < a.rows;
       first += static_cast<int64_t>(gridDim.x) * groups) {
    const int64_t row = first + g;
    const bool live = row < a.rows;
    const int64_t offset = row * a.dim;
    const float r = live ? rstd[row] : 0.f;
    float xv[kChunks][VEC], dn[kChunks][VEC];
    float dot = 0.f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int vi = t + c * group;
      if (live && vi < nvec) {
        float dy[VEC];
        load_floats<T, VEC>(x + offset + vi * VEC, xv[c]);
        load_floats<Y, VEC>(gy + offset + vi * VEC, dy);
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
          dn[c][j] = dy[j] * w[c][j];
          dot += dn[c][j] * xv[c][j];
        }
        if (weight_grad) {
#pragma unroll
          for (int j = 0; j < VEC; ++j) acc[c][j] += dy[j] * round_to<T>(xv[c][j] * r);
        }
      }
    }
    const float coef = r * r * r * group_sum(dot, group, scratch) * inv_dim;
    if (!live) continue;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int vi = t + c * group;
      if (vi < nvec) {
        float out[VEC];
#pragma unroll
        for (int j = 0; j < VEC; ++j) out[j] = r * dn[c][j] - xv[c][j] * coef;
        if (gxo != nullptr) {
          // The sum autograd would form: the norm's gradient rounded to T, plus the other readers'.
          float other[VEC];
          load_floats<T, VEC>(gxo + offset + vi * VEC, other);
#pragma unroll
          for (int j = 0; j < VEC; ++j) out[j] = round_to<T>(round_to<T>(out[j]) + other[j]);
        }
        store_floats<T, VEC>(gx + offset + vi * VEC, out);
        if (grad_res != nullptr) {
#pragma unroll
          for (int j = 0; j < VEC; ++j) out[j] = round_to<T>(out[j]);
          store_floats<R, VEC>(grad_res + offset + vi * VEC, out);
        }
      }
    }
  }

  if (!weight_grad) return;
  float* partial = a.grad_w_partial + (member * gridDim.x + blockIdx.x) * a.dim;
  if (groups == 1) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int vi = t + c * group;
      if (vi < nvec) store_floats<float, VEC>(partial + vi * VEC, acc[c]);
    }
    return;
  }
  // The groups' sums, added in group order.
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int vi = t + c * group;
    if (vi < nvec)
#pragma unroll
      for (int j = 0; j < VEC; ++j) group_acc[g * a.dim + vi * VEC + j] = acc[c][j];
  }
  __syncthreads();
  for (int col = threadIdx.x; col < nvec * VEC; col += blockDim.x) {
    float sum = 0.f;
    for (int k = 0; k < groups; ++k) sum += group_acc[k * a.dim + col];
    partial[col] = sum;
  }
}

// grad_w[col] = sum over b of partial[b, col], b in a fixed order per column;
// member blockIdx.y's partials and gradient follow the ones before it.
constexpr int kReduceCols = 32, kReduceRows = 32;
template <typename W>
__global__ void __launch_bounds__(kReduceCols* kReduceRows)
    rms_norm_weight_grad_reduce(const float* __restrict__ partial, int blocks, int dim, W* __restrict__ grad_w) {
  __shared__ float part[kReduceRows][kReduceCols + 1];
  partial += static_cast<int64_t>(blockIdx.y) * blocks * dim;
  grad_w += static_cast<int64_t>(blockIdx.y) * dim;
  const int col = blockIdx.x * kReduceCols + threadIdx.x;
  float sum = 0.f;
  if (col < dim)
    for (int b = threadIdx.y; b < blocks; b += kReduceRows) sum += partial[static_cast<int64_t>(b) * dim + col];
  part[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < dim) {
    float total = 0.f;
#pragma unroll
    for (int r = 0; r < kReduceRows; ++r) total += part[r][threadIdx.x];
    grad_w[col] = from_float<W>(total);
  }
}

int element_bytes(ModelDtype dtype) { return dtype == ModelDtype::kBFloat16 ? 2 : 4; }

// Elements per thread word: a whole 16-byte word of x when the rows split
// into words and every pointer is 16-byte aligned, else single elements.
int vector_width(int dim, ModelDtype x_dtype, std::initializer_list<const void*> pointers) {
  const int vec = 16 / element_bytes(x_dtype);
  if (dim % vec != 0) return 1;
  for (const void* p : pointers)
    if (p != nullptr && !aligned_16(p)) return 1;
  return vec;
}

// The threads of a row's group (whole warps, a word each, up to kMaxThreads)
// and of a block (as many groups as fill kBlockThreads, at least one).
struct Layout {
  int group;
  int threads;
  int groups() const { return threads / group; }
};

Layout layout(int dim, int vec) {
  const int words = dim / vec;
  const int group = std::min(kMaxThreads, (words + 31) / 32 * 32);
  return {group, group * std::max(1, kBlockThreads / group)};
}

int grid_blocks(int64_t rows, Layout l, int sm_count) {
  const int per_sm = std::max(1, std::min(32, 2048 / l.threads));
  const int64_t needed = (rows + l.groups() - 1) / l.groups();
  return static_cast<int>(std::min<int64_t>(needed, static_cast<int64_t>(std::max(1, sm_count)) * per_sm));
}

// Calls f(T{}, W{}, Y{}, R{}, VEC constant) for the dtypes and width; false if unsupported.
template <typename F>
bool dispatch_types(ModelDtype x_dtype, ModelDtype w_dtype, ModelDtype y_dtype, ModelDtype res_dtype, int vec, F&& f) {
  using bf16 = __nv_bfloat16;
  const auto with_vec = [&](auto t, auto w, auto y, auto r, auto wide) {
    if (vec == decltype(wide)::value) f(t, w, y, r, wide);
    else f(t, w, y, r, std::integral_constant<int, 1>{});
  };
  if (x_dtype == ModelDtype::kFloat32 && w_dtype == ModelDtype::kFloat32) {
    const auto wide = std::integral_constant<int, 4>{};
    const bool bf16_y = y_dtype == ModelDtype::kBFloat16, bf16_res = res_dtype == ModelDtype::kBFloat16;
    if (!bf16_y && !bf16_res) with_vec(float{}, float{}, float{}, float{}, wide);
    else if (!bf16_y) with_vec(float{}, float{}, float{}, bf16{}, wide);
    else if (!bf16_res) with_vec(float{}, float{}, bf16{}, float{}, wide);
    else with_vec(float{}, float{}, bf16{}, bf16{}, wide);
    return true;
  }
  if (x_dtype != ModelDtype::kBFloat16 || y_dtype != ModelDtype::kBFloat16 || res_dtype != ModelDtype::kBFloat16)
    return false;
  const auto wide = std::integral_constant<int, 8>{};
  if (w_dtype == ModelDtype::kFloat32) with_vec(bf16{}, float{}, bf16{}, bf16{}, wide);
  else with_vec(bf16{}, bf16{}, bf16{}, bf16{}, wide);
  return true;
}

// dispatch_types, with f's sixth argument the CHUNKS constant the row needs:
// 1 where its words fit a group, else the most a thread may hold.
template <typename F>
bool dispatch_norm(ModelDtype x_dtype, ModelDtype w_dtype, ModelDtype y_dtype, ModelDtype res_dtype, int dim, int vec,
                   Layout l, F&& f) {
  const bool one = dim / vec <= l.group;
  return dispatch_types(x_dtype, w_dtype, y_dtype, res_dtype, vec, [&](auto t, auto w, auto y, auto r, auto v) {
    constexpr int kMost = kMaxElementsPerThread / decltype(v)::value;
    if (one) f(t, w, y, r, v, std::integral_constant<int, 1>{});
    else f(t, w, y, r, v, std::integral_constant<int, kMost>{});
  });
}

// The widest word x's rows allow, whatever the pointers' alignment.
int widest_vector(int dim, ModelDtype x_dtype) {
  const int vec = 16 / element_bytes(x_dtype);
  return dim % vec == 0 ? vec : 1;
}

}  // namespace

int rms_norm_backward_blocks(int64_t rows, int dim, ModelDtype x_dtype, int sm_count) {
  // An unaligned call falls back to single elements but keeps this count, so
  // the workspace is always big enough.
  return grid_blocks(rows, layout(dim, widest_vector(dim, x_dtype)), sm_count);
}

cudaError_t rms_norm_forward_launch(const RmsNormForwardArgs& a, int sm_count, cudaStream_t stream) {
  if (a.members < 1 || a.members > 65535) return cudaErrorInvalidValue;
  if (a.rows <= 0) return cudaSuccess;
  if (a.dim < 1 || a.dim > kRmsNormMaxDim) return cudaErrorInvalidValue;
  if ((a.res == nullptr) != (a.x_out == nullptr)) return cudaErrorInvalidValue;
  // Every member's block must start as aligned as member 0's for its words.
  const int vec = vector_width(a.dim, a.x_dtype, {a.x, a.w, a.y, a.res, a.x_out});
  const Layout l = layout(a.dim, vec);
  const dim3 blocks(grid_blocks(a.rows, l, sm_count), a.members);
  const ModelDtype res_dtype = a.res == nullptr ? a.x_dtype : a.res_dtype;
  const bool known = dispatch_norm(a.x_dtype, a.w_dtype, a.y_dtype, res_dtype, a.dim, vec, l,
                                   [&](auto t, auto w, auto y, auto r, auto v, auto c) {
                                     rms_norm_forward_kernel<decltype(t), decltype(w), decltype(y), decltype(r),
                                                             decltype(v)::value, decltype(c)::value>
                                         <<<blocks, l.threads, 0, stream>>>(a, l.group);
                                   });
  if (!known) return cudaErrorInvalidValue;
  return cudaGetLastError();
}

cudaError_t rms_norm_backward_launch(const RmsNormBackwardArgs& a, int sm_count, cudaStream_t stream) {
  if (a.dim < 1 || a.dim > kRmsNormMaxDim) return cudaErrorInvalidValue;
  if (a.members < 1 || a.members > 65535) return cudaErrorInvalidValue;
  if ((a.grad_w_partial == nullptr) != (a.grad_w == nullptr)) return cudaErrorInvalidValue;
  if (a.rows <= 0) {
    // No rows: the weight gradient is zero.
    if (a.grad_w != nullptr)
      return cudaMemsetAsync(a.grad_w, 0, static_cast<size_t>(a.members) * a.dim * element_bytes(a.w_dtype), stream);
    return cudaSuccess;
  }
  // Blocks follow the widest word the shape allows (rms_norm_backward_blocks),
  // whatever the pointers' alignment: the caller sized the workspace by it.
  const int vec =
      vector_width(a.dim, a.x_dtype, {a.x, a.w, a.grad_y, a.grad_x, a.grad_w_partial, a.grad_x_out, a.grad_res});
  const int blocks = rms_norm_backward_blocks(a.rows, a.dim, a.x_dtype, sm_count);
  const Layout l = layout(a.dim, vec);
  const size_t shared = l.groups() > 1 ? static_cast<size_t>(l.groups()) * a.dim * sizeof(float) : 0;
  const ModelDtype res_dtype = a.grad_res == nullptr ? a.x_dtype : a.res_dtype;
  const bool known = dispatch_norm(a.x_dtype, a.w_dtype, a.y_dtype, res_dtype, a.dim, vec, l,
                                   [&](auto t, auto w, auto y, auto r, auto v, auto c) {
                                     rms_norm_backward_kernel<decltype(t), decltype(w), decltype(y), decltype(r),
                                                              decltype(v)::value, decltype(c)::value>
                                         <<<dim3(blocks, a.members), l.threads, shared, stream>>>(a, l.group);
                                   });
  if (!known) return cudaErrorInvalidValue;
  if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
  if (a.grad_w == nullptr) return cudaSuccess;
  const dim3 reduce_threads(kReduceCols, kReduceRows);
  const dim3 reduce_blocks((a.dim + kReduceCols - 1) / kReduceCols, a.members);
  if (a.w_dtype == ModelDtype::kBFloat16)
    rms_norm_weight_grad_reduce<<<reduce_blocks, reduce_threads, 0, stream>>>(
        a.grad_w_partial, blocks, a.dim, static_cast<__nv_bfloat16*>(a.grad_w));
  else
    rms_norm_weight_grad_reduce<<<reduce_blocks, reduce_threads, 0, stream>>>(a.grad_w_partial, blocks, a.dim,
                                                                               static_cast<float*>(a.grad_w));
  return cudaGetLastError();
}

}  // namespace bla::kernels::detail
