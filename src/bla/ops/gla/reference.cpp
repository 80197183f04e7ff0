// GLA's reference form: the recurrence of gla.h, one token at a time.
#include <torch/torch.h>

#include <vector>

#include "bla/ops/checks.h"
#include "bla/ops/gla/gla.h"
#include "bla/ops/gla/internal.h"

namespace bla::ops {

at::Tensor gated_linear_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& g, const GlaOptions& opt) {
  gla_internal::check_sequence_inputs(q, k, v, g);
  const double scale = resolve_scale(opt.scale, q.size(3));
  const int64_t T = q.size(1);
  auto S = at::zeros({q.size(0), q.size(2), q.size(3), v.size(3)}, q.options());
  std::vector<at::Tensor> outputs;
  for (int64_t t = 0; t < T; ++t) {
    const auto q_t = q.select(1, t), k_t = k.select(1, t), v_t = v.select(1, t), g_t = g.select(1, t);
    S = g_t.exp().unsqueeze(-1) * S + k_t.unsqueeze(-1) * v_t.unsqueeze(-2);  // S_t = diag(a_t) S + k v^T
    outputs.push_back(scale * (q_t.unsqueeze(-1) * S).sum(-2));               // o_t = scale S^T q
  }
  if (outputs.empty()) return at::zeros({q.size(0), 0, q.size(2), v.size(3)}, q.options());
  return at::stack(outputs, 1);
}

}  // namespace bla::ops
