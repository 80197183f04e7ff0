// Fused kernels for the model's building blocks: RMSNorm (also an
// ensemble's, one weight per member), SwiGLU's activation, rotary position
// embeddings, the short causal convolution before the mixers and the
// cross-entropy of an ensemble's batched LM head (kernels/model_*.cu), each
// with an autograd Function. They compute what the LibTorch forms in
// src/bla/model/lm.cpp and src/bla/mixers/common/heads.cpp compute, in float32
// arithmetic, on bf16 or float32 tensors; the dispatch there falls back to
// those forms for anything *_supported rejects.
//
// Every call runs on the current CUDA stream, allocates through the caching
// allocator and never synchronises with the host, so a training step that
// uses them can be captured into a CUDA graph.
//
// This header carries no CUDA types: the library's dispatch includes it from
// plain C++ files.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace bla::kernels {

// ---- RMSNorm over the last dim: y = cast_y(cast(x * r) * cast(w)) with
// r = rsqrt(mean(x^2) + eps) in float32, cast = rounding to x's dtype, cast_y
// to the output's: x's, or bf16 for a float32 x (out_dtype; the input of a
// bf16 product gets the values a cast after the norm would give, without that
// pass over memory, and its gradient is read in bf16 as it comes).
// Supported: x a CUDA tensor (..., D), bf16 or float32, 1 <= D <= 8192;
// weight (D) on x's device, float32 or x's dtype.
bool rms_norm_supported(const at::Tensor& x, const at::Tensor& weight, std::string* why = nullptr);
// Differentiable in x and weight (the weight gradient is summed in float32 in
// a fixed order: the same bits every run). Throws std::invalid_argument when
// !rms_norm_supported.
at::Tensor rms_norm_autograd(const at::Tensor& x, const at::Tensor& weight, double eps,
                             std::optional<at::ScalarType> out_dtype = std::nullopt);
// The raw passes into caller-provided buffers (tests poison them): y shaped
// like x (contiguous), of x's dtype or bf16, rstd (rows) float32 with rows =
// x.numel() / D; grad_y of x's dtype or bf16 (any other is cast to x's);
// grad_x like x; grad_weight (D) of weight's dtype, or undefined to skip it.
void rms_norm_forward_out(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor& y, at::Tensor& rstd);
void rms_norm_backward_out(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& rstd,
                           const at::Tensor& grad_y, at::Tensor& grad_x, at::Tensor& grad_weight);

// An ensemble's RMSNorm (src/bla/mixers/common/members.h): x (E*B, ..., D),
// member e's rows (x.size(0) / E sequences of them) normalised with weight[e]
// of weight (E, D), one launch for all members, each member's rows exactly as
// rms_norm_autograd on them alone (the same bits, its weight gradient too).
bool rms_norm_members_supported(const at::Tensor& x, const at::Tensor& weight, std::string* why = nullptr);
at::Tensor rms_norm_members_autograd(const at::Tensor& x, const at::Tensor& weight, double eps,
                                     std::optional<at::ScalarType> out_dtype = std::nullopt);

// ---- RMSNorm after a residual add: s = cast(x + res) (res a branch's output,
// x's dtype or bf16 for a float32 x) and y = RMSNorm(s) as above, weight (D)
// or an ensemble's (E, D), in one pass each way: the add, the sum of s's two
// gradients and their cast to res's dtype run inside the norm's kernels.
// Returns {s, y}; the gradients are the bits of the unfused add and norm.
bool rms_norm_after_add_supported(const at::Tensor& x, const at::Tensor& res, const at::Tensor& weight,
                                  std::string* why = nullptr);
std::pair<at::Tensor, at::Tensor> rms_norm_after_add_autograd(
    const at::Tensor& x, const at::Tensor& res, const at::Tensor& weight, double eps,
    std::optional<at::ScalarType> out_dtype = std::nullopt);

// ---- SwiGLU activation: h = silu(gate) * up, elementwise.
// Supported: gate and up CUDA tensors of one shape, device and dtype (bf16 or
// float32).
bool swiglu_supported(const at::Tensor& gate, const at::Tensor& up, std::string* why = nullptr);
at::Tensor swiglu_autograd(const at::Tensor& gate, const at::Tensor& up);
void swiglu_forward_out(const at::Tensor& gate, const at::Tensor& up, at::Tensor& h);
void swiglu_backward_out(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& grad_h, at::Tensor& grad_gate,
                         at::Tensor& grad_up);
// The same on one joined product (..., 2H) of the gate and up projections
// (gate in its first H columns, up in the last): h (..., H), and the gradient
// of the joined product in one (..., 2H) tensor. Supported: a CUDA tensor,
// bf16 or float32, with an even last dim.
bool swiglu_joined_supported(const at::Tensor& joined, std::string* why = nullptr);
at::Tensor swiglu_joined_autograd(const at::Tensor& joined);

// ---- Rotary embedding (rotate-half) of x (B, T, H, D), first token at
// position `start`, inv_freq_i = base^(-2i/D).
// Supported: a CUDA tensor (B, T, H, D), bf16 or float32, D even, 2 <= D <= 4096,
// B * T < 2^31. The pair form rotates q and k in one launch; they must share
// B, T, D, dtype and device (H may differ).
bool rotary_supported(const at::Tensor& x, std::string* why = nullptr);
bool rotary_pair_supported(const at::Tensor& q, const at::Tensor& k, std::string* why = nullptr);
at::Tensor rotary_autograd(const at::Tensor& x, int64_t start, double base);
std::pair<at::Tensor, at::Tensor> rotary_pair_autograd(const at::Tensor& q, const at::Tensor& k, int64_t start,
                                                       double base);
// The raw pass: q_out (and k_out when k is defined) shaped like q (k),
// contiguous. q and k may be views whose tokens are evenly spaced with their
// heads side by side (of one joined q, k, v product): read in place, not
// copied. inverse = true rotates by -angle (the backward).
void rotary_out(const at::Tensor& q, const at::Tensor& k, int64_t start, double base, bool inverse, at::Tensor& q_out,
                at::Tensor& k_out);

// ---- Short causal depthwise convolution (src/bla/mixers/common/short_conv.h,
// causal_depthwise_conv) of x (M, T, C) with zeros before the first token:
//   y[s, t, c] = b[c] + sum_{k<K} w[c, k] * x[s, t-(K-1)+k, c],
// weight (C, K) and bias (C), or an ensemble's (E, C, K) and (E, C) with
// member e's sequences the e-th of E equal parts of M. The forward has the
// LibTorch form's bits (the same products and sums, in the same order, each
// rounded to x's dtype); the backward computes in float32, the weight and
// bias gradients summed in a fixed order (the same bits every run, and a
// member's the same as a solo call's on its sequences).
// Supported: x a CUDA tensor (M, T, C), bf16 or float32, T >= 1; weight and
// bias float32 on x's device; 1 <= K <= 8.
bool short_conv_supported(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          std::string* why = nullptr);
at::Tensor short_conv_autograd(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);
// The raw passes into caller-provided buffers (tests poison them): y, grad_x
// like x (contiguous); grad_weight, grad_bias like weight and bias.
void short_conv_forward_out(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& y);
void short_conv_backward_out(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& grad_y,
                             at::Tensor& grad_x, at::Tensor& grad_weight, at::Tensor& grad_bias);

// ---- Cross-entropy of logits (R, V), row by row, with targets (R) int64
// (negative: ignored): per-row loss lse - logit[target] (0 when ignored) and
// hit (1 where the first largest logit is the target, 0 when ignored), both
// float32 (R); differentiable in the logits: g * (softmax - onehot), in the
// logits' dtype. What head_cross_entropy_members (src/bla/model/head_loss.h)
// computes with log_softmax, gather and argmax, in one pass each way.
// Supported: logits a CUDA tensor (R, V), bf16 or float32, V < 2^31; targets
// int64 (R) on its device.
bool head_loss_supported(const at::Tensor& logits, const at::Tensor& targets, std::string* why = nullptr);
std::pair<at::Tensor, at::Tensor> head_loss_autograd(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace bla::kernels
