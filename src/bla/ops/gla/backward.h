// The gradient of the gated recurrence (gla.h, chunked_gated_recurrence)
// from forward passes of the same recurrence alone, as the CUDA kernel path
// computes it (dispatch.cpp): with no initial state and no gradient into the
// final state, every input gradient is itself a gated recurrence, run
// forward in time or backward, on the other decay axis or the same one.
//
// Key axis, o_i = s sum_{j<=i} (sum_d q_i[d] k_j[d] e^{b_i[d] - b_j[d]}) v_j,
// with b the running sum of g:
//   dq_i = s sum_{j<=i} (do_i . v_j) k_j e^{b_i - b_j}          value axis, forward:  (do, v, k)
//   dk_j = s sum_{i>=j} (do_i . v_j) q_i e^{b_i - b_j}          value axis, backward: (v, do, q)
//   dv_j = s sum_{i>=j} (sum_d q_i[d] k_j[d] e^{..}) do_i       key axis, backward:   (k, q, do)
//   db_t = q_t * dq_t - k_t * dk_t, dg = its reverse running sum;
// value axis, o_i[e] = s sum_{j<=i} (q_i . k_j) v_j[e] e^{b_i[e] - b_j[e]}:
//   dq_i = s sum_{j<=i} (sum_e do_i[e] v_j[e] e^{..}) k_j       key axis, forward:    (do, v, k)
//   dk_j = s sum_{i>=j} (sum_e do_i[e] v_j[e] e^{..}) q_i       key axis, backward:   (v, do, q)
//   dv_j = s sum_{i>=j} (q_i . k_j) do_i e^{b_i - b_j}          value axis, backward: (k, q, do)
//   db_t = o_t * do_t - v_t * dv_t.
// "Backward" runs the recurrence on the sequence reversed in time with the
// gates moved one token: reversed position u carries g_{T-u} (g_T = 0), so
// that its running sums differ by b_i - b_j <= 0 again and nothing overflows.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

#include "bla/ops/gla/gla.h"

namespace bla::ops {

// One forward pass: q, k (B, H, T, Dk); v (B, H, T, Dv); g (B, H, T, Dk or
// Dv by axis), no initial state -> o (B, H, T, Dv) = the recurrence's output
// with scale s. Must not record an autograd graph.
using GatedForward = std::function<at::Tensor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const at::Tensor& g, DecayAxis axis, double scale)>;

struct GatedRecurrenceGrads {
  at::Tensor dq, dk, dv, dg;  // shaped and typed as q, k, v, g
};

// The input gradients of o = forward(q, k, v, g, axis, scale) for the
// incoming gradient grad_out, from three calls of `forward`. `out` is o
// itself (the value axis needs it for dg).
GatedRecurrenceGrads gated_recurrence_backward(const GatedForward& forward, const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const at::Tensor& g, const at::Tensor& out,
                                               const at::Tensor& grad_out, DecayAxis axis, double scale);

}  // namespace bla::ops
