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
// Two pairs of the four passes run over the same states: the dq pass's
// state entering each chunk, sum_j v_j k_j^T decayed on the key columns
// (key axis; on the value columns on the value axis), is the forward's
// sum_j k_j v_j^T transposed, over the same chunks (both forward in time);
// the dk and dv passes, both backward in time, run over sum_i do_i q_i^T and
// its transpose sum_i q_i do_i^T. Where a pass can take given chunk states
// (the kernels', PassStates below) the backward computes two of the four:
// the forward keeps its own for the dq pass, the dk pass hands its to the dv
// pass.
// "Backward" runs the recurrence on the sequence reversed in time with the
// gates moved one token: reversed position u carries g_{T-u} (g_T = 0), so
// that its running sums differ by b_i - b_j <= 0 again and nothing overflows.
// The kernels run such a pass in place (reading the rows in reverse order);
// other passes flip copies (reversed_by_flipping).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/torch.h>

#include <functional>
#include <type_traits>
#include <utility>

#include "bla/ops/gla/gla.h"

namespace bla::ops {

// One pass: q, k (B, H, T, Dk); v (B, H, T, Dv); g (B, H, T, Dk or Dv by
// axis), no initial state -> o (B, H, T, Dv) = the recurrence's output with
// scale s; `reversed`: the recurrence run backward in time (the pass over
// the inputs flipped in time with the gates moved one token, its output
// flipped back: reversed_by_flipping). Must not record an autograd graph.
using GatedForward = std::function<at::Tensor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const at::Tensor& g, DecayAxis axis, double scale, bool reversed)>;

// A reversed pass made of a forward one (forward(.., false)) and copies:
// the inputs flipped in time, g moved one token, the output flipped back.
at::Tensor reversed_by_flipping(const GatedForward& forward, const at::Tensor& q, const at::Tensor& k,
                                const at::Tensor& v, const at::Tensor& g, DecayAxis axis, double scale);

// The states entering each chunk of a pass, (B, H, chunks, Dk, Dv) in the
// pass's own chunking and order (from its last token when reversed), that
// one pass can hand another (the identities above).
struct PassStates {
  at::Tensor given;                // defined: the pass may read these instead of computing its own
  at::Tensor* computed = nullptr;  // not null: receives the states the pass computed; left undefined
                                   // where it has none to share (then nothing is shared)
};

// A pass as GatedForward's that can take and hand over chunk states.
using SharingGatedForward =
    std::function<at::Tensor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                             DecayAxis axis, double scale, bool reversed, const PassStates& states)>;

struct GatedRecurrenceGrads {
  at::Tensor dq, dk, dv, dg;  // shaped and typed as q, k, v, g
};

// The log gates' gradient from the passes' results: dg_t = sum_{u >= t}
// (a_u da_u - c_u dc_u) over time (axis 2), summed in float64, in g's dtype;
// (a, da, c, dc) = (q, dq, k, dk) on the key axis, (o, do, v, dv) on the
// value axis. gate_gradient_by_scan: in LibTorch ops (ops/scan.h); the CUDA
// path's Pass gives the kernel's.
using GateGradient = std::function<at::Tensor(const at::Tensor& a, const at::Tensor& da, const at::Tensor& c,
                                              const at::Tensor& dc, const at::Tensor& g)>;
at::Tensor gate_gradient_by_scan(const at::Tensor& a, const at::Tensor& da, const at::Tensor& c, const at::Tensor& dc,
                                 const at::Tensor& g);

// The input gradients of o = forward(q, k, v, g, axis, scale) for the
// incoming gradient grad_out, from three calls of `forward` and one of
// `gate_gradient`. `out` is o itself (the value axis needs it for dg).
GatedRecurrenceGrads gated_recurrence_backward(const GatedForward& forward, const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const at::Tensor& g, const at::Tensor& out,
                                               const at::Tensor& grad_out, DecayAxis axis, double scale,
                                               const GateGradient& gate_gradient = gate_gradient_by_scan);

// The same from passes that share states: the dq pass is given
// forward_states (the forward's, where defined) transposed, the dv pass the
// dk pass's transposed (where it handed them over).
GatedRecurrenceGrads gated_recurrence_backward(const SharingGatedForward& forward, const at::Tensor& q,
                                               const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                               const at::Tensor& out, const at::Tensor& grad_out, DecayAxis axis,
                                               double scale, const at::Tensor& forward_states,
                                               const GateGradient& gate_gradient = gate_gradient_by_scan);

namespace gla_internal {
// Whether Pass::run takes a PassStates (the passes of the kernels do).
template <class Pass, class = void>
struct SharesStates : std::false_type {};
template <class Pass>
struct SharesStates<
    Pass, std::void_t<decltype(Pass::run(std::declval<const at::Tensor&>(), std::declval<const at::Tensor&>(),
                                         std::declval<const at::Tensor&>(), std::declval<const at::Tensor&>(),
                                         DecayAxis::Key, 1.0, nullptr, false, PassStates{}))>> : std::true_type {};
}  // namespace gla_internal

// The recurrence as an autograd Function around a pass that records no
// graph: Pass::run(q, k, v, g, axis, scale, final_state*, reversed) -> o
// (GatedForward's pass), with the final state into *final_state when it is
// not null, and Pass::gate_gradient (GateGradient's). apply(q, k, v, g,
// value_axis, scale) returns {o, final state}; o's gradient comes from
// gated_recurrence_backward with Pass::run, the final state has none. Where
// Pass::run takes a last PassStates argument (SharingGatedForward's pass),
// the forward keeps the chunk states it computed for the backward, whose
// passes share them. The CUDA path (dispatch.cpp) instantiates it with the
// kernels; the tests with the LibTorch form too, to check the Function on any
// device.
template <class Pass>
class GatedRecurrenceFunction : public torch::autograd::Function<GatedRecurrenceFunction<Pass>> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q,
                                                const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                                bool value_axis, double scale) {
    at::Tensor final_state, states;
    const DecayAxis axis = value_axis ? DecayAxis::Value : DecayAxis::Key;
    at::Tensor out;
    if constexpr (gla_internal::SharesStates<Pass>::value)
      out = Pass::run(q, k, v, g, axis, scale, &final_state, false, PassStates{at::Tensor(), &states});
    else
      out = Pass::run(q, k, v, g, axis, scale, &final_state, false);
    ctx->save_for_backward({q, k, v, g, out, states});
    ctx->saved_data["value_axis"] = value_axis;
    ctx->saved_data["scale"] = scale;
    ctx->mark_non_differentiable({final_state});
    return {out, final_state};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &g = saved[3], &out = saved[4];
    const DecayAxis axis = ctx->saved_data["value_axis"].toBool() ? DecayAxis::Value : DecayAxis::Key;
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto grad_out = grads[0].defined() ? grads[0].to(out.scalar_type()) : at::zeros_like(out);
    GatedRecurrenceGrads r;
    if constexpr (gla_internal::SharesStates<Pass>::value) {
      const SharingGatedForward pass = [](const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& fv,
                                          const at::Tensor& fg, DecayAxis fa, double fs, bool reversed,
                                          const PassStates& states) {
        return Pass::run(fq, fk, fv, fg, fa, fs, nullptr, reversed, states);
      };
      r = gated_recurrence_backward(pass, q, k, v, g, out, grad_out, axis, scale, saved[5], &Pass::gate_gradient);
    } else {
      const GatedForward pass = [](const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& fv,
                                   const at::Tensor& fg, DecayAxis fa, double fs, bool reversed) {
        return Pass::run(fq, fk, fv, fg, fa, fs, nullptr, reversed);
      };
      r = gated_recurrence_backward(pass, q, k, v, g, out, grad_out, axis, scale, &Pass::gate_gradient);
    }
    return {r.dq, r.dk, r.dv, r.dg, at::Tensor(), at::Tensor()};
  }
};

}  // namespace bla::ops
