// Sliding-window attention (SWA) on CUDA, flash-style: online softmax over key
// blocks, no T x T matrix, key blocks wholly outside the window skipped. The
// backward recomputes the probabilities from the saved log-sum-exp.
//
// Layout everywhere: q, k, v, out (B, T, H, D), contiguous or not (copied if
// not); lse (B, H, T) float32 in natural-log units; bias (B, T, H) float.
// Query t attends to keys s with t - window < s <= t (docs/bla.md, "N = W": SWA
// is BLA with N = W); window <= 0 or window >= T is full causal attention.
// Logits: scale * <q_t, k_s> + bias[t] - bias[s] (GatedFWA's cumulative log
// gate when bias is given).
//
// This header carries no CUDA types: the library's dispatch includes it from
// plain C++ files.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace bla::kernels {

// Which kernel family runs. kAuto: tensor cores (mma.sync, bf16 operands,
// fp32 accumulation) for bf16 inputs, the plain SIMT kernels for float32.
// kSimt works for both dtypes (the simple, obviously-correct version, kept as
// a second reference); kTensorCore needs bf16 inputs.
enum class SwaPath { kAuto, kSimt, kTensorCore };

// True when the kernels handle these tensors: CUDA, one device, all bf16 or
// all float32, 4-D (B, T, H, D) with equal shapes, D in {64, 128}, window >= 0.
// Otherwise false, and *why (if given) says what is unsupported.
bool swa_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                   std::string* why = nullptr);

// Differentiable SWA: the result's backward gives dq, dk, dv and, when bias is
// defined and requires grad, d(bias). scale <= 0 means 1/sqrt(D). Throws
// std::invalid_argument when !swa_supported or bias is not (B, T, H).
at::Tensor swa_forward_autograd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                                double scale, const at::Tensor& bias = {}, SwaPath path = SwaPath::kAuto);

// The raw passes, without autograd, writing into caller-provided buffers
// (tests poison them to catch unwritten elements). out: like q; lse: (B, H, T)
// float32; grad_bias: (B, T, H) float32, or undefined to skip it.
void swa_forward_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                     int64_t window, double scale, SwaPath path, at::Tensor& out, at::Tensor& lse);
void swa_backward_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                      const at::Tensor& out, const at::Tensor& lse, const at::Tensor& grad_out, int64_t window,
                      double scale, SwaPath path, at::Tensor& grad_q, at::Tensor& grad_k, at::Tensor& grad_v,
                      at::Tensor& grad_bias);

}  // namespace bla::kernels
