// GSA's reference form: the recurrence of gsa.h, one token at a time.
#include <torch/torch.h>

#include <vector>

#include "bla/ops/gsa/gsa.h"
#include "bla/ops/gsa/internal.h"

namespace bla::ops {

at::Tensor gated_slot_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& f, const GsaOptions& opt) {
  gsa_internal::check_sequence_inputs(q, k, v, f);
  gsa_internal::check_scale(opt);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), m = f.size(3);
  auto keys = at::zeros({B, H, m, q.size(3)}, q.options());
  auto values = at::zeros({B, H, m, v.size(3)}, q.options());
  std::vector<at::Tensor> outputs;
  for (int64_t t = 0; t < T; ++t) {
    const auto alpha = f.select(1, t).exp().unsqueeze(-1);  // (B, H, m, 1)
    const auto write = 1.0 - alpha;
    keys = alpha * keys + write * k.select(1, t).unsqueeze(-2);
    values = alpha * values + write * v.select(1, t).unsqueeze(-2);
    const auto scores = opt.scale * (keys * q.select(1, t).unsqueeze(-2)).sum(-1);  // K~ q, (B, H, m)
    const auto weights = at::softmax(scores, -1);
    outputs.push_back((weights.unsqueeze(-1) * values).sum(-2));  // V~^T p
  }
  if (outputs.empty()) return at::zeros({B, 0, H, v.size(3)}, q.options());
  return at::stack(outputs, 1);
}

}  // namespace bla::ops
