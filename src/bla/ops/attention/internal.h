// What the forms of the attention op (reference.cpp, parallel.cpp,
// dispatch.cpp) share: the input checks, and the parallel form itself, which
// dispatch.cpp falls back to. Not part of the op's interface: callers include
// attention.h.
#pragma once

#include <ATen/core/Tensor.h>

#include "bla/ops/attention/attention.h"

namespace bla::ops::attention_internal {

// q, k (B, T, H, Dk) alike, v (B, T, H, Dv), window >= 0, bias (B, T, H) or undefined.
void check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const WindowOptions& opt,
                  const at::Tensor& bias);

// Whether the parallel form hands these inputs to SDPA: full causal attention
// (window 0 or >= T) without a bias, where LibTorch has SDPA.
bool uses_sdpa(const at::Tensor& q, const WindowOptions& opt, const at::Tensor& bias);

// The parallel form (parallel.cpp) on checked inputs, on any device.
at::Tensor parallel_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const WindowOptions& opt,
                              const at::Tensor& bias);

}  // namespace bla::ops::attention_internal
