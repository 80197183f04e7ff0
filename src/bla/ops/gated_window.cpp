#include "bla/ops/gated_window.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace bla::ops {
namespace {

constexpr double kMinusInfinity = -std::numeric_limits<double>::infinity();

std::string shape_string(at::IntArrayRef sizes) {
  std::ostringstream out;
  out << sizes;
  return out.str();
}

std::string describe(const at::Tensor& t) {
  return t.defined() ? shape_string(t.sizes()) : std::string("an undefined tensor");
}

void require_shape(const char* name, const at::Tensor& t, const std::vector<int64_t>& expected, const char* layout) {
  if (!t.defined() || t.sizes() != at::IntArrayRef(expected)) {
    throw std::invalid_argument(std::string("bla: gated window ") + name + " must be " + layout + " = " +
                                shape_string(expected) + "; got " + describe(t));
  }
}

void require_dim(const char* name, const at::Tensor& t, int64_t dims, const char* layout) {
  if (!t.defined() || t.dim() != dims) {
    throw std::invalid_argument(std::string("bla: gated window ") + name + " must be " + layout + "; got " +
                                describe(t));
  }
}

void check_options(const GatedWindowOptions& opt) {
  if (opt.window < 1) {
    throw std::invalid_argument("bla: gated window window (" + std::to_string(opt.window) +
                                ") must be >= 1; set window to the number of keys each query sees");
  }
  if (opt.block < 1) {
    throw std::invalid_argument("bla: gated window block (" + std::to_string(opt.block) +
                                ") must be >= 1; use a positive query block such as 64");
  }
}

double scale_for(const GatedWindowOptions& opt, int64_t head_dim_k) {
  return opt.scale > 0 ? opt.scale : 1.0 / std::sqrt(static_cast<double>(head_dim_k));
}

// q, k (B, T, H, Dk), v (B, T, H, Dv), g (B, T, H).
void check_sequence_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g) {
  require_dim("q", q, 4, "(batch, seq, heads, head_dim)");
  require_dim("v", v, 4, "(batch, seq, heads, head_dim_v)");
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Dk = q.size(3);
  require_shape("k", k, {B, T, H, Dk}, "(batch, seq, heads, head_dim)");
  require_shape("v", v, {B, T, H, v.size(3)}, "(batch, seq, heads, head_dim_v)");
  require_shape("log_gate", g, {B, T, H}, "(batch, seq, heads)");
}

// Zero padding of dimension `dim` of t: `before` in front, `after` behind.
at::Tensor pad_dim(const at::Tensor& t, int64_t dim, int64_t before, int64_t after) {
  if (before == 0 && after == 0) return t;
  std::vector<int64_t> pad(2 * (t.dim() - dim), 0);  // constant_pad_nd lists pads from the last dimension backwards
  pad[pad.size() - 2] = before;
  pad[pad.size() - 1] = after;
  return at::constant_pad_nd(t, pad, 0);
}

}  // namespace

at::Tensor gated_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& log_gate, const GatedWindowOptions& opt) {
  check_options(opt);
  check_sequence_inputs(q, k, v, log_gate);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Dk = q.size(3), Dv = v.size(3);
  if (T == 0) return at::zeros({B, 0, H, Dv}, v.options());
  const int64_t W = opt.window;
  const int64_t Q = std::min(opt.block, T);  // queries per block
  const int64_t nb = (T + Q - 1) / Q;
  const int64_t Tp = nb * Q;
  const int64_t K = W + Q - 1;  // keys a block of queries can see
  const auto acc = at::promote_types(log_gate.scalar_type(), at::kFloat);

  // Block b holds queries b*Q .. b*Q+Q-1 and the keys b*Q-(W-1) .. b*Q+Q-1:
  // keys are padded with W-1 zeros in front, and unfold cuts the overlapping windows.
  auto qb = pad_dim(q.permute({0, 2, 1, 3}), 2, 0, Tp - T).reshape({B, H, nb, Q, Dk});
  auto kw = pad_dim(k.permute({0, 2, 1, 3}), 2, W - 1, Tp - T).unfold(2, K, Q);  // (B, H, nb, Dk, K)
  auto vw = pad_dim(v.permute({0, 2, 1, 3}), 2, W - 1, Tp - T).unfold(2, K, Q);  // (B, H, nb, Dv, K)
  auto gw = pad_dim(log_gate.permute({0, 2, 1}).to(acc), 2, W - 1, Tp - T).unfold(2, K, Q);  // (B, H, nb, K)

  // G_t - G_s = sum_{s < u <= t} g_u, from a cumsum over the block's own key window:
  // its values stay within W + Q gate values, unlike a cumsum over the whole sequence.
  auto local_G = gw.cumsum(-1);
  auto query_G = local_G.narrow(-1, W - 1, Q);  // query i of the block sits at window position W-1+i
  auto bias = query_G.unsqueeze(-1) - local_G.unsqueeze(-2);  // (B, H, nb, Q, K), <= 0 where unmasked

  // Query i (t = b*Q + i) sees window position j (s = b*Q - (W-1) + j) iff t-W < s <= t and s >= 0.
  auto idx = at::TensorOptions().dtype(at::kLong).device(q.device());
  auto i = at::arange(Q, idx).view({1, Q, 1});
  auto j = at::arange(K, idx).view({1, 1, K});
  auto block_start = at::arange(nb, idx).view({nb, 1, 1}) * Q;
  auto visible = (j >= i) & (j <= i + (W - 1)) & (block_start - (W - 1) + j >= 0);  // (nb, Q, K)

  auto logits = qb.matmul(kw).to(acc) * scale_for(opt, Dk) + bias;
  auto probs = logits.masked_fill(visible.logical_not(), kMinusInfinity).softmax(-1).to(v.scalar_type());
  auto out = probs.matmul(vw.transpose(-1, -2));  // (B, H, nb, Q, Dv)
  return out.reshape({B, H, Tp, Dv}).narrow(2, 0, T).permute({0, 2, 1, 3});
}

at::Tensor gated_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& log_gate, const GatedWindowOptions& opt) {
  check_options(opt);
  check_sequence_inputs(q, k, v, log_gate);
  const int64_t T = q.size(1);
  const double scale = scale_for(opt, q.size(3));
  auto G = log_gate.cumsum(1);  // (B, T, H)
  std::vector<at::Tensor> outs;
  outs.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t first = std::max<int64_t>(0, t - opt.window + 1);
    const int64_t n = t - first + 1;
    auto keys = k.narrow(1, first, n);  // (B, n, H, Dk)
    auto logits = (keys * q.select(1, t).unsqueeze(1)).sum(-1) * scale +
                  (G.select(1, t).unsqueeze(1) - G.narrow(1, first, n));  // (B, n, H)
    auto p = logits.softmax(1);
    outs.push_back((p.unsqueeze(-1) * v.narrow(1, first, n)).sum(1));  // (B, H, Dv)
  }
  if (outs.empty()) return at::zeros({q.size(0), 0, q.size(2), v.size(3)}, v.options());
  return at::stack(outs, 1);
}

GatedWindowState gated_window_initial_state(int64_t batch, int64_t heads, int64_t head_dim_k, int64_t head_dim_v,
                                            const GatedWindowOptions& opt, const at::TensorOptions& options) {
  check_options(opt);
  GatedWindowState s;
  s.keys = at::zeros({batch, opt.window, heads, head_dim_k}, options);
  s.values = at::zeros({batch, opt.window, heads, head_dim_v}, options);
  const auto gate_type = at::promote_types(options.dtype().toScalarType(), at::kFloat);
  s.gate_sums = at::zeros({batch, opt.window, heads}, options.dtype(gate_type));
  s.position = 0;
  return s;
}

namespace {

void check_state(const GatedWindowState& s, const GatedWindowOptions& opt, int64_t B, int64_t H, int64_t Dk,
                 int64_t Dv) {
  require_shape("state keys", s.keys, {B, opt.window, H, Dk}, "(batch, window, heads, head_dim)");
  require_shape("state values", s.values, {B, opt.window, H, Dv}, "(batch, window, heads, head_dim_v)");
  require_shape("state gate_sums", s.gate_sums, {B, opt.window, H}, "(batch, window, heads)");
}

}  // namespace

at::Tensor gated_window_prefill(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& log_gate, const GatedWindowOptions& opt, GatedWindowState& state) {
  check_options(opt);
  check_sequence_inputs(q, k, v, log_gate);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), W = opt.window;
  check_state(state, opt, B, H, q.size(3), v.size(3));
  if (state.position != 0) {
    throw std::invalid_argument("bla: gated window prefill needs a fresh state (position 0); got position " +
                                std::to_string(state.position) +
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
  check_options(opt);
  require_dim("q", q, 3, "(batch, heads, head_dim) in a decode step");
  require_dim("v", v, 3, "(batch, heads, head_dim_v) in a decode step");
  const int64_t B = q.size(0), H = q.size(1), Dk = q.size(2), Dv = v.size(2), W = opt.window;
  require_shape("k", k, {B, H, Dk}, "(batch, heads, head_dim) in a decode step");
  require_shape("v", v, {B, H, Dv}, "(batch, heads, head_dim_v) in a decode step");
  require_shape("log_gate", log_gate, {B, H}, "(batch, heads) in a decode step");
  check_state(state, opt, B, H, Dk, Dv);

  const int64_t slot = state.position % W;
  // Every key already held decays by this token's gate (G_t - G_s gains g_t); the new key starts at 0.
  state.gate_sums = state.gate_sums + log_gate.to(state.gate_sums.scalar_type()).unsqueeze(1);
  state.gate_sums.select(1, slot).zero_();
  state.keys.select(1, slot).copy_(k);
  state.values.select(1, slot).copy_(v);

  auto logits = (state.keys * q.unsqueeze(1)).sum(-1).to(state.gate_sums.scalar_type()) * scale_for(opt, Dk) +
                state.gate_sums;  // (B, W, H)
  const int64_t filled = std::min(state.position + 1, W);  // the ring fills slots 0, 1, ... before it wraps
  if (filled < W) logits.narrow(1, filled, W - filled).fill_(kMinusInfinity);
  auto p = logits.softmax(1).to(state.values.scalar_type());
  state.position += 1;
  return (p.unsqueeze(-1) * state.values).sum(1).to(v.scalar_type());  // (B, H, Dv)
}

}  // namespace bla::ops
