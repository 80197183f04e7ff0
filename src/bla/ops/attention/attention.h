// Causal softmax attention, optionally over a sliding window and with a
// logit bias, as a functional op on tensors shaped (batch, seq, heads,
// head_dim). The one op of two mixers: `attention` (full causal, window 0)
// and `swa` (the last W keys); BLA with N == W, which is exactly SWA(W), runs
// it on CUDA too. With a bias b added as b[t] - b[s] it is GatedFWA's map
// (b the cumulative log gate; ops/gatedfwa/ has the op that mixer runs).
// Forms, one file each in this folder:
//   - reference.cpp, sliding_window_attention_reference: one query at a
//     time, explicit window and softmax;
//   - parallel.cpp: the training form, all queries at once (a masked batched
//     matmul, or SDPA for full causal attention without a bias);
//   - dispatch.cpp, sliding_window_attention: the SWA CUDA kernel
//     (kernels/swa_*.cu) on CUDA tensors where it applies, else the parallel
//     form.
// No decode step: the layer keeps the keys and values and calls the op.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace bla::ops {

struct WindowOptions {
  int64_t window = 0;  // keys t-window < s <= t; 0 means full causal attention
  double scale = 0.0;  // <= 0: 1/sqrt(head_dim)
};

// Fast form: the CUDA kernel, or a masked batched matmul, SDPA where LibTorch
// has it. q, k: (B, T, H, Dk); v: (B, T, H, Dv); bias (optional): (B, T, H),
// added to the logits as bias[t] - bias[s] (GatedFWA's cumulative log gate).
at::Tensor sliding_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const WindowOptions& opt, const at::Tensor& bias = {});
// Reference: one query at a time, explicit window and softmax.
at::Tensor sliding_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const WindowOptions& opt, const at::Tensor& bias = {});

}  // namespace bla::ops
