// Cross-entropy of the LM head's logits row by row (model_launch.h,
// HeadLossArgs): the batched head of an ensemble
// (src/bla/model/head_loss.cpp, head_cross_entropy_members). Where the
// LibTorch form casts the logits to float32, takes log_softmax, gathers,
// takes the argmax and, backward, makes a float32 one-hot, log_softmax's
// backward and a cast back (about ten passes over rows x vocab float32
// numbers), the forward here reads each row once (log-sum-exp, target logit,
// first argmax) and the backward reads it once and writes its gradient once,
// in the logits' dtype.
//
// One block per row (grid-stride), 16-byte words where the row allows; the
// running maximum and sum of exponentials are combined across threads in a
// fixed order (the same bits every run).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "model_device.cuh"
#include "model_launch.h"

namespace bla::kernels::detail {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// (max, sum of exp(x - max)) of two parts.
__device__ __forceinline__ void combine(float& m, float& s, float m2, float s2) {
  const float nm = fmaxf(m, m2);
  if (nm == -INFINITY) return;  // both parts empty
  s = s * __expf(m - nm) + s2 * __expf(m2 - nm);
  m = nm;
}

// Whether (v, i) comes before (best, arg) as the argmax: NaN first (as
// LibTorch's argmax), then the larger value, then the smaller index.
__device__ __forceinline__ bool better(float v, int i, float best, int arg) {
  const bool vn = v != v, bn = best != best;
  if (vn != bn) return vn;
  if (!vn && v != best) return v > best;
  return i < arg;
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads) head_loss_forward_kernel(HeadLossArgs a) {
  __shared__ float s_m[kWarps], s_s[kWarps], s_best[kWarps];
  __shared__ int s_arg[kWarps];
  const int V = a.vocab;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
    const T* l = static_cast<const T*>(a.logits) + row * V;
    float m = -INFINITY, s = 0.f, best = -INFINITY;
    int arg = 0x7fffffff;
    for (int i = threadIdx.x * VEC; i < V; i += kThreads * VEC) {
      float v[VEC];
      load_floats<T, VEC>(l + i, v);
      float local = v[0];
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        local = fmaxf(local, v[j]);
        if (better(v[j], i + j, best, arg)) {
          best = v[j];
          arg = i + j;
        }
      }
      const float nm = fmaxf(m, local);
      float part = 0.f;
#pragma unroll
      for (int j = 0; j < VEC; ++j) part += __expf(v[j] - nm);
      s = (m == -INFINITY ? 0.f : s * __expf(m - nm)) + part;
      m = nm;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float m2 = __shfl_xor_sync(kFullMask, m, offset), s2 = __shfl_xor_sync(kFullMask, s, offset);
      const float b2 = __shfl_xor_sync(kFullMask, best, offset);
      const int a2 = __shfl_xor_sync(kFullMask, arg, offset);
      combine(m, s, m2, s2);
      if (better(b2, a2, best, arg)) {
        best = b2;
        arg = a2;
      }
    }
    if (lane == 0) {
      s_m[warp] = m;
      s_s[warp] = s;
      s_best[warp] = best;
      s_arg[warp] = arg;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kWarps; ++w) {
        combine(m, s, s_m[w], s_s[w]);
        if (better(s_best[w], s_arg[w], best, arg)) {
          best = s_best[w];
          arg = s_arg[w];
        }
      }
      const float lse = m + __logf(s);
      const int64_t target = a.targets[row];
      const bool valid = target >= 0 && target < V;
      a.lse[row] = lse;
      a.loss[row] = valid ? lse - to_float(l[target]) : 0.f;
      a.hit[row] = valid && arg == target ? 1.f : 0.f;
    }
    __syncthreads();  // the shared slots are free for the next row
  }
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads) head_loss_backward_kernel(HeadLossArgs a) {
  const int V = a.vocab;
  for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
    const T* l = static_cast<const T*>(a.logits) + row * V;
    T* d = static_cast<T*>(a.grad_logits) + row * V;
    const int64_t target = a.targets[row];
    const bool valid = target >= 0 && target < V;
    const float g = valid ? a.grad_loss[row] : 0.f, lse = a.lse[row];
    for (int i = threadIdx.x * VEC; i < V; i += kThreads * VEC) {
      float v[VEC], out[VEC];
      load_floats<T, VEC>(l + i, v);
#pragma unroll
      for (int j = 0; j < VEC; ++j) out[j] = valid ? g * (__expf(v[j] - lse) - (i + j == target ? 1.f : 0.f)) : 0.f;
      store_floats<T, VEC>(d + i, out);
    }
  }
}

int grid_for(int64_t rows) { return static_cast<int>(rows < (1 << 30) ? rows : (1 << 30)); }

template <bool kBackward>
cudaError_t launch(const HeadLossArgs& a, cudaStream_t stream) {
  if (a.rows < 0 || a.vocab < 1) return cudaErrorInvalidValue;
  if (a.rows == 0) return cudaSuccess;
  const int per_word = a.dtype == ModelDtype::kBFloat16 ? 8 : 4;
  const bool words = a.vocab % per_word == 0 && aligned_16(a.logits) && (!kBackward || aligned_16(a.grad_logits));
  const int blocks = grid_for(a.rows);
  auto go = [&](auto t, auto v) {
    if constexpr (kBackward)
      head_loss_backward_kernel<decltype(t), decltype(v)::value><<<blocks, kThreads, 0, stream>>>(a);
    else
      head_loss_forward_kernel<decltype(t), decltype(v)::value><<<blocks, kThreads, 0, stream>>>(a);
  };
  if (a.dtype == ModelDtype::kBFloat16) {
    if (words) go(__nv_bfloat16{}, std::integral_constant<int, 8>{});
    else go(__nv_bfloat16{}, std::integral_constant<int, 1>{});
  } else {
    if (words) go(float{}, std::integral_constant<int, 4>{});
    else go(float{}, std::integral_constant<int, 1>{});
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t head_loss_forward_launch(const HeadLossArgs& a, cudaStream_t stream) { return launch<false>(a, stream); }
cudaError_t head_loss_backward_launch(const HeadLossArgs& a, cudaStream_t stream) { return launch<true>(a, stream); }

}  // namespace bla::kernels::detail
