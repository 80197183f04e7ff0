// Internal interface between model_autograd.cpp and the model kernels
// (model_norm.cu, model_swiglu.cu, model_rotary.cu): raw pointers and sizes
// only, so the .cu files need no LibTorch headers and the .cpp no kernel code.
// Every launcher runs on `stream`, allocates nothing, never synchronises (the
// training step is captured into a CUDA graph) and returns the launch error.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bla::kernels::detail {

enum class ModelDtype { kFloat32, kBFloat16 };

// ---- RMSNorm: y = cast_y(cast(x * r) * cast(w)), r = rsqrt(mean(x^2) + eps) in float32,
// cast = rounding to x_dtype, cast_y to y_dtype (x_dtype, or bf16 for a float32
// x: the input of a bf16 product, rounded once here instead of by a cast after).
// x, grad_x: (rows, dim) contiguous of x_dtype; y, grad_y: (rows, dim) of
// y_dtype; w, grad_w: (dim) of w_dtype (float32, or x_dtype); rstd: (rows)
// float32. With members = E > 1 (an ensemble, src/bla/mixers/common/members.h)
// every one of them holds E such blocks one after another: x (E, rows, dim), w
// (E, dim), rstd (E, rows), and member e's rows are normalised with its weight
// exactly as a solo call on them would be (the same blocks, rows and order:
// the same bits).
//
// With a residual (res not null): the norm is of s = cast(x + res), a branch's
// output res (res_dtype: x's, or bf16 for a float32 x) added to the residual
// stream x first, and s is written to x_out (like x). Its backward then takes
// grad_x_out (like x; null for none), the gradient s has from its other
// readers: grad_x = cast(norm's gradient) + grad_x_out, rounded to x's dtype,
// and grad_res = that rounded to res_dtype. So the residual add, its gradient's
// sum and cast run inside the norm's two passes.
struct RmsNormForwardArgs {
  int members = 1;
  int64_t rows = 0;  // per member
  int dim = 0;
  ModelDtype x_dtype = ModelDtype::kFloat32;
  ModelDtype w_dtype = ModelDtype::kFloat32;
  ModelDtype y_dtype = ModelDtype::kFloat32;
  ModelDtype res_dtype = ModelDtype::kFloat32;
  float eps = 0.f;
  const void* x = nullptr;
  const void* res = nullptr;  // optional
  void* x_out = nullptr;      // with res
  const void* w = nullptr;
  void* y = nullptr;
  float* rstd = nullptr;
};

struct RmsNormBackwardArgs {
  int members = 1;
  int64_t rows = 0;  // per member
  int dim = 0;
  ModelDtype x_dtype = ModelDtype::kFloat32;
  ModelDtype w_dtype = ModelDtype::kFloat32;
  ModelDtype y_dtype = ModelDtype::kFloat32;  // grad_y's
  ModelDtype res_dtype = ModelDtype::kFloat32;
  const void* x = nullptr;  // the normalised input: s where the forward had a residual
  const void* w = nullptr;
  const float* rstd = nullptr;
  const void* grad_y = nullptr;
  const void* grad_x_out = nullptr;  // optional
  void* grad_x = nullptr;
  void* grad_res = nullptr;  // optional
  // Both null to skip the weight gradient; else grad_w_partial is a
  // (members * rms_norm_backward_blocks(rows, dim, ...), dim) float32 workspace.
  float* grad_w_partial = nullptr;
  void* grad_w = nullptr;
};

constexpr int kRmsNormMaxDim = 8192;
// Blocks of the backward launch (rows of its weight-gradient workspace): a
// function of the shape and the device only, so results are deterministic.
int rms_norm_backward_blocks(int64_t rows, int dim, ModelDtype x_dtype, int sm_count);
cudaError_t rms_norm_forward_launch(const RmsNormForwardArgs& args, int sm_count, cudaStream_t stream);
cudaError_t rms_norm_backward_launch(const RmsNormBackwardArgs& args, int sm_count, cudaStream_t stream);

// ---- SwiGLU activation: h = silu(g) * u, elementwise over n elements of h,
// in rows of `width` (0: one row of n). Row r's gate and up (and their
// gradients) start at r * in_stride elements from their pointers: in_stride =
// width for separate tensors, 2 * width for one joined (rows, 2 * width)
// product whose up half starts `width` elements after its gate half.
struct SwigluArgs {
  int64_t n = 0;
  int64_t width = 0;
  int64_t in_stride = 0;
  ModelDtype dtype = ModelDtype::kFloat32;
  const void* gate = nullptr;
  const void* up = nullptr;
  const void* grad_h = nullptr;  // backward only
  void* h = nullptr;             // forward only
  void* grad_gate = nullptr;     // backward only
  void* grad_up = nullptr;       // backward only
};
cudaError_t swiglu_forward_launch(const SwigluArgs& args, int sm_count, cudaStream_t stream);
cudaError_t swiglu_backward_launch(const SwigluArgs& args, int sm_count, cudaStream_t stream);

// ---- Rotary embedding (rotate-half) of up to two tensors in one launch:
// a (tokens, heads_a, dim) and b (tokens, heads_b, dim), tokens = B*T, token
// index b*T + t at position start + t. inverse rotates by -angle (the
// backward). b may be null with heads_b = 0. out_a/out_b: contiguous, shaped
// like a/b. Two kernels: the (seq, dim) table of cos and sin, then the
// rotation of every token's heads reading it.
struct RotaryArgs {
  int64_t tokens = 0;
  int seq = 0;
  int heads_a = 0;
  int heads_b = 0;
  int dim = 0;  // even
  int64_t start = 0;
  float base = 0.f;
  bool inverse = false;
  ModelDtype dtype = ModelDtype::kFloat32;
  // Elements between one token's heads and the next's in a and b (their heads
  // side by side: views of a joined q, k, v product qualify); outputs are
  // contiguous (tokens, heads, dim).
  int64_t stride_a = 0;
  int64_t stride_b = 0;
  const void* a = nullptr;
  const void* b = nullptr;
  void* out_a = nullptr;
  void* out_b = nullptr;
  float* table = nullptr;  // workspace: rotary_table_floats(seq, dim) floats
};
constexpr int kRotaryMaxDim = 4096;
inline int64_t rotary_table_floats(int seq, int dim) { return static_cast<int64_t>(seq) * dim; }
cudaError_t rotary_launch(const RotaryArgs& args, cudaStream_t stream);

// ---- Short causal depthwise convolution (src/bla/mixers/common/short_conv.h)
// of `members` groups of `seqs` sequences (T, C) each, member e's weight and
// bias at e * C * K and e * C:
//   y[s, t, c] = b[c] + sum_{k<K} w[c, k] * x[s, t-(K-1)+k, c]   (zeros before t = 0),
// added in that order, each product and sum rounded to x's dtype as the
// LibTorch form's separate operations round them (the same bits). Backward:
//   dx[s, t, c] = sum_k w[c, k] * dy[s, t+(K-1)-k, c]   (t+(K-1)-k < T),
//   dw[c, k] = sum_{s,t} dy[s, t, c] * x[s, t-(K-1)+k, c],   db[c] = sum_{s,t} dy[s, t, c],
// in float32; dw and db through a (members, short_conv_partial_rows(...),
// K+1, C) float32 workspace summed in a fixed order: the same bits every run,
// and a member's the same as a solo call's on its sequences.
// x, y, grad_y, grad_x (members * seqs, T, C) contiguous of dtype, 16-byte
// aligned; w (members, C, K), b (members, C), grad_w, grad_b alike, float32.
struct ShortConvArgs {
  int members = 1;
  int64_t seqs = 0;  // per member
  int seq = 0;       // T
  int channels = 0;  // C
  int kernel = 0;    // K
  ModelDtype dtype = ModelDtype::kFloat32;
  const void* x = nullptr;
  const float* w = nullptr;
  const float* b = nullptr;
  void* y = nullptr;             // forward
  const void* grad_y = nullptr;  // backward
  void* grad_x = nullptr;
  float* partial = nullptr;
  float* grad_w = nullptr;
  float* grad_b = nullptr;
};
constexpr int kShortConvMaxKernel = 8;
// Rows of the backward's workspace per member: a function of the shape only.
int short_conv_partial_rows(int64_t seqs, int seq, int channels, ModelDtype dtype);
cudaError_t short_conv_forward_launch(const ShortConvArgs& args, cudaStream_t stream);
cudaError_t short_conv_backward_launch(const ShortConvArgs& args, cudaStream_t stream);

// ---- Cross-entropy of the LM head's logits, one row at a time (an
// ensemble's batched head, src/bla/model/head_loss.cpp): for row r with
// target y_r (< 0: ignored),
//   lse_r = log sum_v exp(l_rv),  loss_r = lse_r - l_{r,y_r} (0 when ignored),
//   hit_r = 1 when the first largest logit is at y_r (0 when ignored),
// in float32; backward: dl_rv = g_r * (exp(l_rv - lse_r) - [v == y_r]),
// rounded to the logits' dtype (0 on ignored rows). logits, grad_logits
// (rows, vocab) contiguous of dtype; targets (rows) int64; lse, loss, hit,
// grad_loss (rows) float32.
struct HeadLossArgs {
  int64_t rows = 0;
  int vocab = 0;
  ModelDtype dtype = ModelDtype::kFloat32;
  const void* logits = nullptr;
  const int64_t* targets = nullptr;
  float* lse = nullptr;              // forward out, backward in
  float* loss = nullptr;             // forward
  float* hit = nullptr;              // forward
  const float* grad_loss = nullptr;  // backward
  void* grad_logits = nullptr;       // backward
};
cudaError_t head_loss_forward_launch(const HeadLossArgs& args, cudaStream_t stream);
cudaError_t head_loss_backward_launch(const HeadLossArgs& args, cudaStream_t stream);

}  // namespace bla::kernels::detail
