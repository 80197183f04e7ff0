// gated_recurrence_backward: see backward.h for the identities it applies.
#include "bla/ops/gla/backward.h"

#include <torch/torch.h>

#include "bla/ops/scan.h"

namespace bla::ops {

namespace {

constexpr int64_t kTime = 2;  // heads-first layout (B, H, T, D)

at::Tensor reversed(const at::Tensor& t) { return t.flip({kTime}); }

// The gates of the reversed pass: position u of the reversed sequence gets
// g_{T-u}, i.e. g moved one token earlier (the last gets 0), then reversed.
at::Tensor reversed_gates(const at::Tensor& g) {
  const int64_t T = g.size(kTime);
  const auto shifted = at::cat({g.narrow(kTime, 1, T - 1), at::zeros_like(g.narrow(kTime, 0, 1))}, kTime);
  return reversed(shifted);
}

// The reverse running sum over time, dg_t = sum_{u >= t} db_u, in float64
// (it adds up as many terms as the sequence has tokens), time innermost
// (scan.h).
at::Tensor reverse_cumsum(const at::Tensor& x) { return reverse_running_sum(x.to(at::kDouble), kTime); }

}  // namespace

at::Tensor reversed_by_flipping(const GatedForward& forward, const at::Tensor& q, const at::Tensor& k,
                                const at::Tensor& v, const at::Tensor& g, DecayAxis axis, double scale) {
  return reversed(forward(reversed(q), reversed(k), reversed(v), reversed_gates(g), axis, scale, false));
}

at::Tensor gate_gradient_by_scan(const at::Tensor& a, const at::Tensor& da, const at::Tensor& c, const at::Tensor& dc,
                                 const at::Tensor& g) {
  const auto db = a.to(da.scalar_type()) * da - c.to(dc.scalar_type()) * dc;
  return reverse_cumsum(db).to(g.scalar_type());
}

GatedRecurrenceGrads gated_recurrence_backward(const GatedForward& forward, const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const at::Tensor& g, const at::Tensor& out,
                                               const at::Tensor& grad_out, DecayAxis axis, double scale,
                                               const GateGradient& gate_gradient) {
  const SharingGatedForward sharing = [&](const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& fv,
                                          const at::Tensor& fg, DecayAxis fa, double fs, bool reversed,
                                          const PassStates&) { return forward(fq, fk, fv, fg, fa, fs, reversed); };
  return gated_recurrence_backward(sharing, q, k, v, g, out, grad_out, axis, scale, at::Tensor(), gate_gradient);
}

GatedRecurrenceGrads gated_recurrence_backward(const SharingGatedForward& forward, const at::Tensor& q,
                                               const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                               const at::Tensor& out, const at::Tensor& grad_out, DecayAxis axis,
                                               double scale, const at::Tensor& forward_states,
                                               const GateGradient& gate_gradient) {
  const DecayAxis other = axis == DecayAxis::Key ? DecayAxis::Value : DecayAxis::Key;
  const auto transposed = [](const at::Tensor& states) {
    return states.defined() ? states.transpose(3, 4) : at::Tensor();
  };
  // dq: forward in time on the other axis; dk: backward, other axis; dv: backward, same axis.
  const auto dq = forward(grad_out, v, k, g, other, scale, false, {transposed(forward_states), nullptr});
  at::Tensor backward_states;
  const auto dk = forward(v, grad_out, q, g, other, scale, true, {at::Tensor(), &backward_states});
  const auto dv = forward(k, q, grad_out, g, axis, scale, true, {transposed(backward_states), nullptr});
  const auto dg = axis == DecayAxis::Key ? gate_gradient(q, dq, k, dk, g) : gate_gradient(out, grad_out, v, dv, g);
  return {dq.to(q.scalar_type()), dk.to(k.scalar_type()), dv.to(v.scalar_type()), dg};
}

}  // namespace bla::ops
