// The SSD recurrence of the Mamba2-like op on CUDA (src/bla/ops/mamba2/
// mamba2.h), one forward pass from a zero state, not differentiable: the
// op's autograd (src/bla/ops/mamba2/dispatch.cpp) takes every gradient from
// three more passes (src/bla/ops/mamba2/backward.h). Per (batch, head),
// with l = log_decay <= 0 and s = key_scale (1 where undefined):
//   h_t = exp(l_t) h_{t-1} + s_t B_t x_t^T      (N x P)
//   y_t = C_t^T h_t
// in chunks of 256 tokens on the tensor cores (kernels/ssd_kernels.cuh;
// tf32 operands for float32 inputs, bf16 for bfloat16, float accumulation,
// float states). The op's own forward has l = dt A and s = dt.
//
// This header carries no CUDA types: the library's dispatch includes it from
// plain C++ files.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace bla::kernels {

// True when the kernels handle these tensors: CUDA tensors on one device;
// x (B, T, H, P) and Bm, Cm (B, T, G, N) all float32 or all bfloat16, G
// dividing H, T >= 1, N and P at most 128 (padded with zeros to 64 or 128
// inside); log_decay and key_scale (B, T, H) float32 (key_scale may be
// undefined). Otherwise false, and *why (if given) says what is unsupported.
bool ssd_supported(const at::Tensor& x, const at::Tensor& log_decay, const at::Tensor& key_scale, const at::Tensor& Bm,
                   const at::Tensor& Cm, std::string* why = nullptr);

// y (B, T, H, P) in x's dtype, or float32 when float_output; the state after
// the last token (B, H, N, P) float32 into *final_state when it is not null.
// Throws std::invalid_argument when !ssd_supported.
at::Tensor ssd_forward(const at::Tensor& x, const at::Tensor& log_decay, const at::Tensor& key_scale,
                       const at::Tensor& Bm, const at::Tensor& Cm, bool float_output,
                       at::Tensor* final_state = nullptr);

}  // namespace bla::kernels
