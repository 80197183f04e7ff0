// The attention op's reference form: one query at a time, its window of keys
// cut out explicitly, then the softmax.
#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "bla/ops/attention/attention.h"
#include "bla/ops/attention/internal.h"
#include "bla/ops/checks.h"

namespace bla::ops {

at::Tensor sliding_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const WindowOptions& opt, const at::Tensor& bias) {
  attention_internal::check_inputs(q, k, v, opt, bias);
  const int64_t T = q.size(1);
  const double scale = resolve_scale(opt.scale, q.size(3));
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
