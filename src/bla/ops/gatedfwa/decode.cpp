// The gatedfwa op's decoding: a prefill that runs the training form over the
// prompt and fills the rings, then one token at a time over ring buffers of
// the last W tokens.
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <string>

#include "bla/ops/checks.h"
#include "bla/ops/gatedfwa/gatedfwa.h"
#include "bla/ops/gatedfwa/internal.h"

namespace bla::ops {
namespace {

constexpr double kMinusInfinity = -std::numeric_limits<double>::infinity();

// The rings: keys, values and gate sums of the last W tokens.
void check_state(const GatedWindowState& s, const GatedWindowOptions& opt, int64_t B, int64_t H, int64_t Dk,
                 int64_t Dv) {
  require_shape("gated window", "state keys", s.keys, {B, opt.window, H, Dk}, "(batch, window, heads, head_dim)");
  require_shape("gated window", "state values", s.values, {B, opt.window, H, Dv}, "(batch, window, heads, head_dim_v)");
  require_shape("gated window", "state gate_sums", s.gate_sums, {B, opt.window, H}, "(batch, window, heads)");
}

}  // namespace

GatedWindowState gated_window_initial_state(int64_t batch, int64_t heads, int64_t head_dim_k, int64_t head_dim_v,
                                            const GatedWindowOptions& opt, const at::TensorOptions& options) {
  gatedfwa_internal::check_options(opt);
  GatedWindowState s;
  s.keys = at::zeros({batch, opt.window, heads, head_dim_k}, options);
  s.values = at::zeros({batch, opt.window, heads, head_dim_v}, options);
  const auto gate_type = compute_dtype(options.dtype().toScalarType());
  s.gate_sums = at::zeros({batch, opt.window, heads}, options.dtype(gate_type));
  s.position = 0;
  return s;
}

at::Tensor gated_window_prefill(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& log_gate, const GatedWindowOptions& opt, GatedWindowState& state) {
  gatedfwa_internal::check_options(opt);
  gatedfwa_internal::check_sequence_inputs(q, k, v, log_gate);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), W = opt.window;
  check_state(state, opt, B, H, q.size(3), v.size(3));
  if (state.position != 0) {
    fail("gated window prefill needs a fresh state (position 0); got position " + std::to_string(state.position) +
         "; continue with gated_window_decode_step or start from gated_window_initial_state");
  }
  auto out = gated_window_attention(q, k, v, log_gate, opt);
  const int64_t n = std::min(T, W);
  if (n > 0) {
    // Token t goes to slot t % W with gate sum G_{T-1} - G_t = g_{t+1} + ... + g_{T-1}.
    auto tail = log_gate.narrow(1, T - n, n).to(state.gate_sums.scalar_type());  // (B, n, H)
    auto from_t = tail.flip({1}).cumsum(1).flip({1});                             // g_t + ... + g_{T-1}
    auto slots = at::arange(T - n, T, at::TensorOptions().dtype(at::kLong).device(q.device())).remainder(W);
    state.keys.index_copy_(1, slots, k.narrow(1, T - n, n).to(state.keys.scalar_type()));
    state.values.index_copy_(1, slots, v.narrow(1, T - n, n).to(state.values.scalar_type()));
    state.gate_sums.index_copy_(1, slots, from_t - tail);
  }
  state.position = T;
  return out;
}

at::Tensor gated_window_decode_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& log_gate, const GatedWindowOptions& opt,
                                    GatedWindowState& state) {
  gatedfwa_internal::check_options(opt);
  require_dim("gated window", "q", q, 3, "(batch, heads, head_dim) in a decode step");
  require_dim("gated window", "v", v, 3, "(batch, heads, head_dim_v) in a decode step");
  const int64_t B = q.size(0), H = q.size(1), Dk = q.size(2), Dv = v.size(2), W = opt.window;
  require_shape("gated window", "k", k, {B, H, Dk}, "(batch, heads, head_dim) in a decode step");
  require_shape("gated window", "v", v, {B, H, Dv}, "(batch, heads, head_dim_v) in a decode step");
  require_shape("gated window", "log_gate", log_gate, {B, H}, "(batch, heads) in a decode step");
  check_state(state, opt, B, H, Dk, Dv);

  const int64_t slot = state.position % W;
  // Every key already held decays by this token's gate (G_t - G_s gains g_t); the new key starts at 0.
  state.gate_sums = state.gate_sums + log_gate.to(state.gate_sums.scalar_type()).unsqueeze(1);
  state.gate_sums.select(1, slot).zero_();
  state.keys.select(1, slot).copy_(k);
  state.values.select(1, slot).copy_(v);

  const double scale = resolve_scale(opt.scale, Dk);
  auto logits = (state.keys * q.unsqueeze(1)).sum(-1).to(state.gate_sums.scalar_type()) * scale +
                state.gate_sums;  // (B, W, H)
  const int64_t filled = std::min(state.position + 1, W);  // the ring fills slots 0, 1, ... before it wraps
  if (filled < W) logits.narrow(1, filled, W - filled).fill_(kMinusInfinity);
  auto p = logits.softmax(1).to(state.values.scalar_type());
  state.position += 1;
  return (p.unsqueeze(-1) * state.values).sum(1).to(v.scalar_type());  // (B, H, Dv)
}

}  // namespace bla::ops
