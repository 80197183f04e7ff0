// The gradient of the SSD recurrence from forward passes of the same
// recurrence alone, as the CUDA kernel path computes it (dispatch.cpp): from
// a zero state and with no gradient into the final state, every input
// gradient is itself a scalar-decay recurrence, run forward in time or
// backward.
//
// Per (batch, head), with Lam the running sum of the log decays l, u = s B
// (the key scale times B, per head) and C per head:
//   y_t   = sum_{j<=t} e^{Lam_t - Lam_j} (C_t . u_j) x_j
//   dC_t  = sum_{j<=t} e^{Lam_t - Lam_j} (dy_t . x_j) u_j      forward:  queries dy, keys x, values u
//   du_j  = sum_{t>=j} e^{Lam_t - Lam_j} (dy_t . x_j) C_t      backward: queries x, keys dy, values C
//   dx_j  = sum_{t>=j} e^{Lam_t - Lam_j} (C_t . u_j) dy_t      backward: queries u, keys C, values dy
//   dLam_t = C_t . dC_t - u_t . du_t, dl = its reverse running sum;
// then dB = s du and dC summed over each group's heads, ds = B . du.
// "Backward" runs the recurrence on the sequence reversed in time with the
// log decays moved one token: reversed position r carries l_{T-r} (l_T = 0),
// so that its running sums differ by Lam_t - Lam_j <= 0 again.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/torch.h>

#include <functional>

namespace bla::ops {

// One forward pass y = F(x, l, s, Bm, Cm) from h = 0, no D, time-major:
// x (B, T, H, P); l, s (B, T, H) float (s undefined for 1); Bm, Cm
// (B, T, G, N) of x's dtype. float_output: y in float32 (or float64 for
// float64 inputs) rather than x's dtype. Must not record an autograd graph.
using SsdForwardPass =
    std::function<at::Tensor(const at::Tensor& x, const at::Tensor& log_decay, const at::Tensor& key_scale,
                             const at::Tensor& Bm, const at::Tensor& Cm, bool float_output)>;

struct SsdGrads {
  at::Tensor dx, dlog_decay, dkey_scale, dBm, dCm;  // shaped and typed as their inputs
};

// The input gradients of y = forward(x, l, s, Bm, Cm) for the incoming
// gradient dy, from three calls of `forward` (s must be defined).
SsdGrads ssd_backward(const SsdForwardPass& forward, const at::Tensor& x, const at::Tensor& log_decay,
                      const at::Tensor& key_scale, const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& dy);

// The recurrence as an autograd Function around a forward pass that records
// no graph: Pass::run(x, l, s, Bm, Cm, float_output) -> y. apply(x, l, s,
// Bm, Cm) returns y; the gradients come from ssd_backward with Pass::run.
// The CUDA path (dispatch.cpp) instantiates it with the kernels; the tests
// with the LibTorch form too, to check the Function on any device.
template <class Pass>
class SsdFunction : public torch::autograd::Function<SsdFunction<Pass>> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& log_decay,
                            const at::Tensor& key_scale, const at::Tensor& Bm, const at::Tensor& Cm) {
    ctx->save_for_backward({x, log_decay, key_scale, Bm, Cm});
    return Pass::run(x, log_decay, key_scale, Bm, Cm, false);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &log_decay = saved[1], &key_scale = saved[2], &Bm = saved[3], &Cm = saved[4];
    const auto dy = grads[0].defined() ? grads[0] : at::zeros_like(x);
    const auto r = ssd_backward(&Pass::run, x, log_decay, key_scale, Bm, Cm, dy);
    return {r.dx, r.dlog_decay, r.dkey_scale, r.dBm, r.dCm};
  }
};

}  // namespace bla::ops
