// The attention op's input checks (internal.h).
#include "bla/ops/attention/internal.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

#include "bla/compat.h"

namespace bla::ops::attention_internal {

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

bool uses_sdpa(const at::Tensor& q, const WindowOptions& opt, const at::Tensor& bias) {
  const bool full = opt.window == 0 || opt.window >= q.size(1);
  return full && !bias.defined() && compat::kHasSdpa;
}

}  // namespace bla::ops::attention_internal
