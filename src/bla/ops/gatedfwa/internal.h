// What the forms of the gatedfwa op (reference.cpp, chunked.cpp, decode.cpp,
// dispatch.cpp) share: their checks of options and inputs, and the blocked
// form the dispatch falls back to. Not part of the op's interface: callers
// include gatedfwa.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

#include "bla/ops/gatedfwa/gatedfwa.h"

namespace bla::ops::gatedfwa_internal {

// window >= 1 and block >= 1.
void check_options(const GatedWindowOptions& opt);

// q, k (B, T, H, Dk), v (B, T, H, Dv), log_gate (B, T, H).
void check_sequence_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_gate);

// chunked.cpp: queries in blocks of opt.block, each block a masked batched
// matmul against its W + block - 1 keys, G_t - G_s from a cumsum local to that
// key window. Inputs already checked.
at::Tensor blocked_gated_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& log_gate, const GatedWindowOptions& opt);

// Attention with a per-token logit bias: scale q_t.k_s + bias_t - bias_s over
// the op's window (the SWA kernel on CUDA). q, k, v (B, T, H, D); bias (B, T, H),
// float32 (float64 for float64 inputs).
using BiasedAttention =
    std::function<at::Tensor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias)>;

// segmented.cpp: the overlapping windows of dimension 1 of x (B, T', ...),
// `count` windows of `size` positions, `step` apart, from position `start`,
// padded at the end by repeating the last position: (B * count, size, ...),
// differentiable (each window's gradient added into place, the padding's
// into the position it repeats).
at::Tensor overlapping_windows(const at::Tensor& x, int64_t start, int64_t size, int64_t step, int64_t count);

// segmented.cpp: the op through `attend`, over segments of `segment` queries
// (>= window), each with the window - 1 keys before it and its bias G minus G
// at its first key, G = cumsum(g) summed in float64. Inputs already checked.
at::Tensor segmented_gated_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& log_gate, int64_t window, int64_t segment,
                                            const BiasedAttention& attend);

}  // namespace bla::ops::gatedfwa_internal
