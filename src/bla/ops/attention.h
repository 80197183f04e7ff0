// Causal softmax attention and sliding-window attention as functional ops on
// tensors shaped (batch, seq, heads, head_dim). Each has a plain reference
// (token by token, obviously correct) beside the fast form used for training.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace bla::ops {

struct WindowOptions {
  int64_t window = 0;  // keys t-window < s <= t; 0 means full causal attention
  double scale = 0.0;  // <= 0: 1/sqrt(head_dim)
};

// Fast form: masked batched matmul, SDPA where LibTorch has it.
// q, k: (B, T, H, Dk); v: (B, T, H, Dv); bias (optional): (B, T, H), added to
// the logits as bias[t] - bias[s] (GatedFWA's cumulative log gate).
at::Tensor sliding_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const WindowOptions& opt, const at::Tensor& bias = {});
// Reference: one query at a time, explicit window and softmax.
at::Tensor sliding_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const WindowOptions& opt, const at::Tensor& bias = {});

}  // namespace bla::ops
