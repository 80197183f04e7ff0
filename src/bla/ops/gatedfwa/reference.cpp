// The gatedfwa op's reference form: one query at a time, G = cumsum(g) and
// an explicit window softmax.
#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "bla/ops/checks.h"
#include "bla/ops/gatedfwa/gatedfwa.h"
#include "bla/ops/gatedfwa/internal.h"

namespace bla::ops {

at::Tensor gated_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& log_gate, const GatedWindowOptions& opt) {
  gatedfwa_internal::check_options(opt);
  gatedfwa_internal::check_sequence_inputs(q, k, v, log_gate);
  const int64_t T = q.size(1);
  const double scale = resolve_scale(opt.scale, q.size(3));
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

}  // namespace bla::ops
