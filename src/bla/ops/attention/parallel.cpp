// The attention op's training form: all queries at once. Full causal
// attention without a bias goes to SDPA (cuDNN / flash on a GPU); otherwise
// a batched matmul of all logits, masked to the window, with the bias
// bias[t] - bias[s] added.
#include <torch/torch.h>

#include <limits>

#include "bla/compat.h"
#include "bla/ops/attention/internal.h"
#include "bla/ops/checks.h"

namespace bla::ops::attention_internal {

at::Tensor parallel_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const WindowOptions& opt,
                              const at::Tensor& bias) {
  const int64_t T = q.size(1);
  const double scale = resolve_scale(opt.scale, q.size(3));
  const bool full = opt.window == 0 || opt.window >= T;
  auto qh = q.transpose(1, 2), kh = k.transpose(1, 2), vh = v.transpose(1, 2);  // (B, H, T, D)
  if (uses_sdpa(q, opt, bias)) {
    return compat::causal_sdpa(qh, kh, vh, scale).transpose(1, 2);
  }
  auto logits = at::matmul(qh, kh.transpose(-2, -1)) * scale;  // (B, H, T, T)
  if (bias.defined()) {
    auto b = bias.transpose(1, 2).to(logits.scalar_type());  // (B, H, T)
    logits = logits + b.unsqueeze(-1) - b.unsqueeze(-2);
  }
  // allowed[t, s]: t - window < s <= t.
  auto pos = at::arange(T, q.options().dtype(at::kLong));
  auto age = pos.unsqueeze(1) - pos.unsqueeze(0);
  auto allowed = age.ge(0);
  if (!full) allowed = allowed.logical_and(age.lt(opt.window));
  logits = logits.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  // Softmax in at least float32 (bf16 logits lose too much), then back to v's type.
  auto probs = q.scalar_type() == at::kDouble ? at::softmax(logits, -1)
                                              : at::softmax(logits, -1, at::kFloat).to(vh.scalar_type());
  return at::matmul(probs, vh).transpose(1, 2);
}

}  // namespace bla::ops::attention_internal
