// The gated recurrence of the GLA and GSA ops on CUDA (src/bla/ops/gla/gla.h,
// chunked_gated_recurrence), from a zero state, forward only: the op's
// autograd (src/bla/ops/gla/dispatch.cpp) takes every gradient from three
// more forward passes (src/bla/ops/gla/backward.h).
//
// Per (batch, head) with b the running sum of the log gates g <= 0:
//   key axis:   o_i = s sum_{j<=i} (sum_d q_i[d] k_j[d] e^{b_i[d] - b_j[d]}) v_j      g: Dk per token
//   value axis: o_i[e] = s sum_{j<=i} (q_i . k_j) v_j[e] e^{b_i[e] - b_j[e]}           g: Dv per token
// computed in chunks of 64 tokens by three kernels (gla_kernels.cuh; on
// tensor cores gla_tensor_core_kernels.cuh): each
// chunk's state update, a scan of the states over the chunks, and each
// chunk's output (its own tokens exactly, pairwise decays included, plus the
// state entering it). Every exponent is "later minus earlier", <= 0.
//
// This header carries no CUDA types: the library's dispatch includes it from
// plain C++ files.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace bla::kernels {

// The widest Dk and Dv the tensor-core kernels take (kernels/gla_tensor_core_kernels.cuh,
// kGlaTcDim); wider heads take the fp32 kernels, or run as passes over blocks of
// their head dims (src/bla/ops/gla/head_blocks.h).
constexpr int64_t kGatedRecurrenceTensorCoreDim = 64;

// True when the kernels handle these tensors: CUDA tensors on one device,
// each float32, bfloat16 or half (computed in float32) or all float64, 4-D
// heads-first (B, H, T, D) with q, k (.., Dk), v (.., Dv), g (.., Dk or Dv
// by the axis), 1 <= Dk, Dv <= 128, and the chunk's working set in one
// block's shared memory (float64 up to 64).
// Otherwise false, and *why (if given) says what is unsupported.
bool gated_recurrence_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                bool value_axis, std::string* why = nullptr);

struct GatedRecurrenceKernelOptions {
  bool value_axis = false;  // the gate on the state's value axis (g: Dv per token) instead of its key axis (Dk)
  double scale = 1.0;       // s
  // Inputs that are (or came from) bf16 or half may take tensor-core
  // products with tf32 operands (head dims up to 64; about 1e-3 of the
  // terms' magnitude), otherwise fp32 FMA.
  bool tensor_cores = false;
  // Backward in time (the gradients' passes, src/bla/ops/gla/backward.h):
  // the recurrence over the tokens in reverse order, token t decayed by
  // g_{t+1} (g_T = 0), o in the tokens' own order. The same as the forward
  // pass over the inputs flipped in time with the gates moved one token,
  // its output flipped back, without the copies.
  bool reversed = false;
  // Defined: the state entering each chunk (B, H, chunks, Dk, Dv), chunks of
  // gated_recurrence_chunks(T) in the pass's own order (from the last token
  // when reversed), in the compute dtype on q's device, any strides (a
  // transposed view among them): the pass reads these instead of computing
  // them (the backward's passes share states: src/bla/ops/gla/backward.h).
  // No final state then.
  at::Tensor entering_states;
};

// Chunks of the kernels' length over seq tokens.
int64_t gated_recurrence_chunks(int64_t seq);

// o (B, H, T, Dv) in the compute dtype (float64 for float64 inputs, else
// float32), in q's memory order (token-major where q
// is a (B, T, H, D) tensor's transposed view: the inputs are read through
// their strides, only a last axis of stride != 1 is copied); the state after
// the last token (B, H, Dk, Dv) into *final_state when it is not null; the
// states entering each chunk (options.entering_states' form, contiguous)
// into *entering_states when it is not null and the pass computed them. Not
// differentiable. Throws std::invalid_argument when
// !gated_recurrence_supported or the given entering states do not fit.
at::Tensor gated_recurrence_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                    const GatedRecurrenceKernelOptions& options, at::Tensor* final_state = nullptr,
                                    at::Tensor* entering_states = nullptr);

// The log gates' gradient (src/bla/ops/gla/backward.h, GateGradient):
// dg_t = sum_{u >= t} (a_u da_u - c_u dc_u) over time, summed in float64,
// in g's dtype and memory order, for CUDA tensors (B, H, T, W) of g's
// shape: a, da, c, dc each float32, bfloat16 or half, or all float64, read
// through their strides. Throws std::invalid_argument otherwise.
at::Tensor gated_recurrence_gate_gradient(const at::Tensor& a, const at::Tensor& da, const at::Tensor& c,
                                          const at::Tensor& dc, const at::Tensor& g);

}  // namespace bla::kernels
