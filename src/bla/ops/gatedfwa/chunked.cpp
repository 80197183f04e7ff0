// The gatedfwa op's blocked form (what gated_window_attention runs where the
// kernel does not): queries in blocks, each block a masked
// batched matmul against the keys its window reaches, with G_t - G_s from a
// cumulative sum local to those keys.
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "bla/ops/checks.h"
#include "bla/ops/gatedfwa/gatedfwa.h"
#include "bla/ops/gatedfwa/internal.h"

namespace bla::ops::gatedfwa_internal {
namespace {

constexpr double kMinusInfinity = -std::numeric_limits<double>::infinity();

// Zero padding of dimension `dim` of t: `before` in front, `after` behind.
at::Tensor pad_dim(const at::Tensor& t, int64_t dim, int64_t before, int64_t after) {
  if (before == 0 && after == 0) return t;
  std::vector<int64_t> pad(2 * (t.dim() - dim), 0);  // constant_pad_nd lists pads from the last dimension backwards
  pad[pad.size() - 2] = before;
  pad[pad.size() - 1] = after;
  return at::constant_pad_nd(t, pad, 0);
}

}  // namespace

at::Tensor blocked_gated_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& log_gate, const GatedWindowOptions& opt) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Dk = q.size(3), Dv = v.size(3);
  if (T == 0) return at::zeros({B, 0, H, Dv}, v.options());
  const int64_t W = opt.window;
  const int64_t Q = std::min(opt.block, T);  // queries per block
  const int64_t nb = (T + Q - 1) / Q;
  const int64_t Tp = nb * Q;
  const int64_t K = W + Q - 1;  // keys a block of queries can see
  const auto acc = compute_dtype(log_gate.scalar_type());

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

  auto logits = qb.matmul(kw).to(acc) * resolve_scale(opt.scale, Dk) + bias;
  auto probs = logits.masked_fill(visible.logical_not(), kMinusInfinity).softmax(-1).to(v.scalar_type());
  auto out = probs.matmul(vw.transpose(-1, -2));  // (B, H, nb, Q, Dv)
  return out.reshape({B, H, Tp, Dv}).narrow(2, 0, T).permute({0, 2, 1, 3});
}

}  // namespace bla::ops::gatedfwa_internal
