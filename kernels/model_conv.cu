// The short causal depthwise convolution before every mixer
// (src/bla/mixers/common/short_conv.h, model.short_conv), forward and
// backward, for an ensemble's members (model_launch.h, ShortConvArgs) or one
// model:
//   y[s, t, c] = b[c] + sum_{k<K} w[c, k] * x[s, t-(K-1)+k, c].
// The LibTorch form makes 2K+1 passes over the activations forward and about
// four times as many backward (products, sums, the zero-padded copies of the
// narrowed windows, the broadcast weight's reductions); here the forward reads
// x once and writes y once, and the backward reads x and dy once and writes dx
// once.
//
// Work: pieces of kPiece tokens of one sequence and VEC channels (one 16-byte
// word) per thread; threadIdx.x runs over the channel words, threadIdx.y over
// pieces, blockIdx.y is the member, blockIdx.z the group of channel words.
// Each thread keeps the K-1 inputs before its token in registers (forward),
// and the next K-1 output grads (backward). The backward's weight and bias
// gradients are summed per thread in float32 over its pieces, written as one
// row of a workspace, and the rows summed in a fixed order by a second
// kernel: no atomics, the same bits every run; the workspace's rows depend on
// the member's shape only, so a member's gradient has the bits of a solo
// call's on the same sequences.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "model_device.cuh"
#include "model_launch.h"

namespace bla::kernels::detail {
namespace {

constexpr int kPiece = 16;           // tokens of one sequence per thread and piece
constexpr int kThreads = 256;        // per block
constexpr int kMaxWordThreads = 128;  // threadIdx.x extent
constexpr int kPiecesPerThread = 4;  // pieces a thread row takes at least, when there are enough
constexpr int kMaxBlocks = 1024;     // per member and channel group

struct Geometry {
  int vec = 1;       // channels per word
  int words = 0;     // C / vec
  int tx = 0;        // threads over words
  int ty = 0;        // threads over pieces
  int groups = 0;    // channel groups (grid z)
  int pieces = 0;    // pieces per sequence
  int64_t items = 0; // pieces per member
  int blocks = 0;    // blocks per member and group (grid x)
};

Geometry geometry(int64_t seqs, int seq, int channels, ModelDtype dtype) {
  Geometry g;
  const int per_word = dtype == ModelDtype::kBFloat16 ? 8 : 4;
  g.vec = channels % per_word == 0 ? per_word : 1;
  g.words = channels / g.vec;
  g.tx = std::min(g.words, kMaxWordThreads);
  g.ty = std::max(1, kThreads / g.tx);
  g.groups = (g.words + g.tx - 1) / g.tx;
  g.pieces = (seq + kPiece - 1) / kPiece;
  g.items = seqs * g.pieces;
  const int64_t rows_needed = (g.items + kPiecesPerThread - 1) / kPiecesPerThread;
  g.blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((rows_needed + g.ty - 1) / g.ty, kMaxBlocks)));
  return g;
}

// a * b and a + b rounded to T, as LibTorch's elementwise operations round
// them (the _rn intrinsics are never fused into an FMA).
template <typename T>
__device__ __forceinline__ float mul_as(float a, float b) {
  return round_to<T>(__fmul_rn(a, b));
}
template <typename T>
__device__ __forceinline__ float add_as(float a, float b) {
  return round_to<T>(__fadd_rn(a, b));
}

template <typename T, int VEC>
__device__ __forceinline__ void load_or_zero(const T* p, bool inside, float (&out)[VEC]) {
  if (inside) {
    load_floats<T, VEC>(p, out);
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j) out[j] = 0.f;
  }
}

template <typename T, int VEC, int K>
__global__ void __launch_bounds__(kThreads) short_conv_forward_kernel(ShortConvArgs a, Geometry g) {
  const int word = blockIdx.z * g.tx + threadIdx.x;
  if (word >= g.words) return;
  const int C = a.channels, T_ = a.seq;
  const int c0 = word * VEC;
  const int64_t member = blockIdx.y;
  const T* x = static_cast<const T*>(a.x) + member * a.seqs * T_ * C + c0;
  T* y = static_cast<T*>(a.y) + member * a.seqs * T_ * C + c0;
  float w[K][VEC], bias[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    bias[j] = round_to<T>(a.b[member * C + c0 + j]);
#pragma unroll
    for (int k = 0; k < K; ++k) w[k][j] = round_to<T>(a.w[(member * C + c0 + j) * K + k]);
  }
  const int64_t stride = static_cast<int64_t>(gridDim.x) * g.ty;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * g.ty + threadIdx.y; item < g.items; item += stride) {
    const int64_t s = item / g.pieces;
    const int t0 = static_cast<int>(item % g.pieces) * kPiece, t1 = min(T_, t0 + kPiece);
    const T* xs = x + s * T_ * C;
    T* ys = y + s * T_ * C;
    float win[K][VEC];  // win[k] = x[t-(K-1)+k]; win[K-1] is loaded at t
#pragma unroll
    for (int k = 0; k < K - 1; ++k) {
      const int t = t0 - (K - 1) + k;
      load_or_zero<T, VEC>(xs + static_cast<int64_t>(t) * C, t >= 0, win[k]);
    }
    for (int t = t0; t < t1; ++t) {
      load_floats<T, VEC>(xs + static_cast<int64_t>(t) * C, win[K - 1]);
      float out[VEC];
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        float acc = bias[j];
#pragma unroll
        for (int k = 0; k < K; ++k) acc = add_as<T>(acc, mul_as<T>(win[k][j], w[k][j]));
        out[j] = acc;
      }
      store_floats<T, VEC>(ys + static_cast<int64_t>(t) * C, out);
#pragma unroll
      for (int k = 0; k < K - 1; ++k)
#pragma unroll
        for (int j = 0; j < VEC; ++j) win[k][j] = win[k + 1][j];
    }
  }
}

template <typename T, int VEC, int K>
__global__ void __launch_bounds__(kThreads) short_conv_backward_kernel(ShortConvArgs a, Geometry g) {
  const int word = blockIdx.z * g.tx + threadIdx.x;
  if (word >= g.words) return;
  const int C = a.channels, T_ = a.seq;
  const int c0 = word * VEC;
  const int64_t member = blockIdx.y;
  const int64_t base = member * a.seqs * T_ * C + c0;
  const T* x = static_cast<const T*>(a.x) + base;
  const T* dy = static_cast<const T*>(a.grad_y) + base;
  T* dx = static_cast<T*>(a.grad_x) + base;
  float w[K][VEC], dw[K][VEC], db[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    db[j] = 0.f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      w[k][j] = round_to<T>(a.w[(member * C + c0 + j) * K + k]);
      dw[k][j] = 0.f;
    }
  }
  const int64_t stride = static_cast<int64_t>(gridDim.x) * g.ty;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * g.ty + threadIdx.y; item < g.items; item += stride) {
    const int64_t s = item / g.pieces;
    const int t0 = static_cast<int>(item % g.pieces) * kPiece, t1 = min(T_, t0 + kPiece);
    const int64_t off = s * T_ * C;
    float xw[K][VEC];   // xw[k] = x[t-(K-1)+k]
    float gw[K][VEC];   // gw[i] = dy[t+i]
#pragma unroll
    for (int k = 0; k < K - 1; ++k) {
      const int t = t0 - (K - 1) + k;
      load_or_zero<T, VEC>(x + off + static_cast<int64_t>(t) * C, t >= 0, xw[k]);
    }
#pragma unroll
    for (int i = 1; i < K; ++i) {
      const int t = t0 + i - 1;
      load_or_zero<T, VEC>(dy + off + static_cast<int64_t>(t) * C, t < T_, gw[i]);
    }
    for (int t = t0; t < t1; ++t) {
#pragma unroll
      for (int i = 0; i < K - 1; ++i)
#pragma unroll
        for (int j = 0; j < VEC; ++j) gw[i][j] = gw[i + 1][j];
      load_or_zero<T, VEC>(dy + off + static_cast<int64_t>(t + K - 1) * C, t + K - 1 < T_, gw[K - 1]);
      load_floats<T, VEC>(x + off + static_cast<int64_t>(t) * C, xw[K - 1]);
      float out[VEC];
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        float acc = 0.f;
#pragma unroll
        for (int k = 0; k < K; ++k) {
          acc += w[k][j] * gw[K - 1 - k][j];
          dw[k][j] += gw[0][j] * xw[k][j];
        }
        db[j] += gw[0][j];
        out[j] = acc;
      }
      store_floats<T, VEC>(dx + off + static_cast<int64_t>(t) * C, out);
#pragma unroll
      for (int k = 0; k < K - 1; ++k)
#pragma unroll
        for (int j = 0; j < VEC; ++j) xw[k][j] = xw[k + 1][j];
    }
  }
  // This thread's row of the workspace: (K+1, C) with row K the bias.
  const int64_t row = static_cast<int64_t>(blockIdx.x) * g.ty + threadIdx.y;
  const int64_t rows = static_cast<int64_t>(g.blocks) * g.ty;
  float* p = a.partial + ((member * rows + row) * (K + 1)) * C + c0;
#pragma unroll
  for (int k = 0; k < K; ++k) store_floats<float, VEC>(p + static_cast<int64_t>(k) * C, dw[k]);
  store_floats<float, VEC>(p + static_cast<int64_t>(K) * C, db);
}

// grad_w[e, c, k] (k < K) and grad_b[e, c] (k == K) = sum over the member's
// workspace rows, in a fixed order per element.
constexpr int kReduceCols = 32, kReduceRows = 8;
__global__ void __launch_bounds__(kReduceCols* kReduceRows)
    short_conv_weight_grad_reduce(const float* __restrict__ partial, int64_t rows, int channels, int kernel,
                                  float* __restrict__ grad_w, float* __restrict__ grad_b) {
  __shared__ float part[kReduceRows][kReduceCols + 1];
  const int col = blockIdx.x * kReduceCols + threadIdx.x;
  const int k = blockIdx.y;
  const int64_t member = blockIdx.z;
  const float* p = partial + member * rows * (kernel + 1) * channels + static_cast<int64_t>(k) * channels;
  float sum = 0.f;
  if (col < channels)
    for (int64_t r = threadIdx.y; r < rows; r += kReduceRows) sum += p[r * (kernel + 1) * channels + col];
  part[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < channels) {
    float total = 0.f;
#pragma unroll
    for (int r = 0; r < kReduceRows; ++r) total += part[r][threadIdx.x];
    if (k < kernel) grad_w[(member * channels + col) * kernel + k] = total;
    else grad_b[member * channels + col] = total;
  }
}

// Calls f(T{}, VEC constant, K constant); false if unsupported.
template <typename F>
bool dispatch_conv(ModelDtype dtype, int vec, int kernel, F&& f) {
  auto with_k = [&](auto t, auto v) {
    switch (kernel) {
      case 1: f(t, v, std::integral_constant<int, 1>{}); return true;
      case 2: f(t, v, std::integral_constant<int, 2>{}); return true;
      case 3: f(t, v, std::integral_constant<int, 3>{}); return true;
      case 4: f(t, v, std::integral_constant<int, 4>{}); return true;
      case 5: f(t, v, std::integral_constant<int, 5>{}); return true;
      case 6: f(t, v, std::integral_constant<int, 6>{}); return true;
      case 7: f(t, v, std::integral_constant<int, 7>{}); return true;
      case 8: f(t, v, std::integral_constant<int, 8>{}); return true;
      default: return false;
    }
  };
  if (dtype == ModelDtype::kFloat32) {
    return vec == 4 ? with_k(float{}, std::integral_constant<int, 4>{}) : with_k(float{}, std::integral_constant<int, 1>{});
  }
  using bf16 = __nv_bfloat16;
  return vec == 8 ? with_k(bf16{}, std::integral_constant<int, 8>{}) : with_k(bf16{}, std::integral_constant<int, 1>{});
}

bool valid(const ShortConvArgs& a) {
  return a.members >= 1 && a.members <= 65535 && a.seqs >= 0 && a.seq >= 1 && a.channels >= 1 && a.kernel >= 1 &&
         a.kernel <= kShortConvMaxKernel && aligned_16(a.x);
}

}  // namespace

int short_conv_partial_rows(int64_t seqs, int seq, int channels, ModelDtype dtype) {
  const Geometry g = geometry(seqs, seq, channels, dtype);
  return g.blocks * g.ty;
}

cudaError_t short_conv_forward_launch(const ShortConvArgs& a, cudaStream_t stream) {
  if (!valid(a) || !aligned_16(a.y)) return cudaErrorInvalidValue;
  if (a.seqs == 0) return cudaSuccess;
  const Geometry g = geometry(a.seqs, a.seq, a.channels, a.dtype);
  if (g.groups > 65535) return cudaErrorInvalidValue;
  const dim3 grid(g.blocks, a.members, g.groups), block(g.tx, g.ty);
  const bool known = dispatch_conv(a.dtype, g.vec, a.kernel, [&](auto t, auto v, auto k) {
    short_conv_forward_kernel<decltype(t), decltype(v)::value, decltype(k)::value><<<grid, block, 0, stream>>>(a, g);
  });
  if (!known) return cudaErrorInvalidValue;
  return cudaGetLastError();
}

cudaError_t short_conv_backward_launch(const ShortConvArgs& a, cudaStream_t stream) {
  if (!valid(a) || !aligned_16(a.grad_y) || !aligned_16(a.grad_x) || !aligned_16(a.partial)) return cudaErrorInvalidValue;
  if (a.partial == nullptr || a.grad_w == nullptr || a.grad_b == nullptr) return cudaErrorInvalidValue;
  const Geometry g = geometry(a.seqs, a.seq, a.channels, a.dtype);
  if (g.groups > 65535) return cudaErrorInvalidValue;
  const dim3 grid(g.blocks, a.members, g.groups), block(g.tx, g.ty);
  // With no sequences every workspace row is written as zeros all the same.
  const bool known = dispatch_conv(a.dtype, g.vec, a.kernel, [&](auto t, auto v, auto k) {
    short_conv_backward_kernel<decltype(t), decltype(v)::value, decltype(k)::value><<<grid, block, 0, stream>>>(a, g);
  });
  if (!known) return cudaErrorInvalidValue;
  if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
  const dim3 reduce_grid((a.channels + kReduceCols - 1) / kReduceCols, a.kernel + 1, a.members);
  short_conv_weight_grad_reduce<<<reduce_grid, dim3(kReduceCols, kReduceRows), 0, stream>>>(
      a.partial, static_cast<int64_t>(g.blocks) * g.ty, a.channels, a.kernel, a.grad_w, a.grad_b);
  return cudaGetLastError();
}

}  // namespace bla::kernels::detail
