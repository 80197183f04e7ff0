#include "bla/ops/attention.h"

#include "bla/compat.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/swa.h"
#endif

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace bla::ops {

namespace {
void check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const WindowOptions& opt,
                  const at::Tensor& bias) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) {
    throw std::invalid_argument("attention: q, k, v must be (batch, seq, heads, head_dim)");
  }
  if (q.sizes() != k.sizes() || q.size(0) != v.size(0) || q.size(1) != v.size(1) || q.size(2) != v.size(2)) {
    throw std::invalid_argument("attention: q and k must have the same shape, and v the same (batch, seq, heads)");
  }
  if (opt.window < 0) {
    throw std::invalid_argument("attention: window (" + std::to_string(opt.window) + ") must be >= 0 (0 = full causal)");
  }
  if (bias.defined() && (bias.dim() != 3 || bias.size(0) != q.size(0) || bias.size(1) != q.size(1) ||
                         bias.size(2) != q.size(2))) {
    throw std::invalid_argument("attention: bias must be (batch, seq, heads)");
  }
}

double resolve_scale(const WindowOptions& opt, int64_t head_dim) {
  return opt.scale > 0 ? opt.scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
}
}  // namespace

at::Tensor sliding_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const WindowOptions& opt, const at::Tensor& bias) {
  check_inputs(q, k, v, opt, bias);
  const int64_t T = q.size(1);
  const double scale = resolve_scale(opt, q.size(3));
  const bool full = opt.window == 0 || opt.window >= T;
  // Full causal attention without a bias goes to SDPA (cuDNN / flash on a
  // GPU), which beats our kernel's window = T case (docs/performance.md).
  const bool use_sdpa = full && !bias.defined() && compat::kHasSdpa;
  if (q.is_cuda() && !use_sdpa) {
#ifdef BLA_HAVE_CUDA_KERNELS
    std::string why = "turned off by BLA_KERNELS=0";
    if (kernels_enabled() && kernels::swa_supported(q, k, v, opt.window, &why)) {
      return kernels::swa_forward_autograd(q, k, v, opt.window, scale, bias);
    }
    note_kernel_fallback("sliding_window_attention", why);
#else
    note_kernel_fallback("sliding_window_attention", "bla-train was built without its CUDA kernels");
#endif
  }
  auto qh = q.transpose(1, 2), kh = k.transpose(1, 2), vh = v.transpose(1, 2);  // (B, H, T, D)
  if (use_sdpa) {
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

at::Tensor sliding_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const WindowOptions& opt, const at::Tensor& bias) {
  check_inputs(q, k, v, opt, bias);
  const int64_t T = q.size(1);
  const double scale = resolve_scale(opt, q.size(3));
  std::vector<at::Tensor> outputs;
  for (int64_t t = 0; t < T; ++t) {
    int64_t first = opt.window == 0 ? 0 : std::max<int64_t>(0, t - opt.window + 1);
    auto keys = k.slice(1, first, t + 1);                                        // (B, S, H, D)
    auto logits = (keys * q.select(1, t).unsqueeze(1)).sum(-1) * scale;          // (B, S, H)
    if (bias.defined()) logits = logits + bias.select(1, t).unsqueeze(1) - bias.slice(1, first, t + 1);
    auto weights = at::softmax(logits, 1);                                       // over S
    outputs.push_back((weights.unsqueeze(-1) * v.slice(1, first, t + 1)).sum(1));  // (B, H, Dv)
  }
  return at::stack(outputs, 1);
}

}  // namespace bla::ops
