// The mamba2 op's reference form: the recurrence of mamba2.h one token at a
// time from h = 0, the definition the other forms are held to.
#include <torch/torch.h>

#include <vector>

#include "bla/ops/mamba2/internal.h"
#include "bla/ops/mamba2/mamba2.h"

namespace bla::ops {

at::Tensor selective_state_space_reference(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                           const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& D) {
  const auto d = mamba2_internal::check_sequence_inputs(x, dt, A, Bm, Cm, D);
  auto Bh = mamba2_internal::expand_groups(Bm, d.heads);  // (B, T, H, N)
  auto Ch = mamba2_internal::expand_groups(Cm, d.heads);
  auto h = at::zeros({d.batch, d.heads, d.d_state, d.head_dim}, x.options());
  std::vector<at::Tensor> ys;
  ys.reserve(d.seq);
  for (int64_t t = 0; t < d.seq; ++t) {
    auto dt_t = dt.select(1, t);                                   // (B, H)
    auto decay = (dt_t * A).exp().unsqueeze(-1).unsqueeze(-1);      // exp(dt_t A)
    auto input = Bh.select(1, t).unsqueeze(-1) * x.select(1, t).unsqueeze(-2);  // B_t x_t^T: (B, H, N, P)
    h = decay * h + dt_t.unsqueeze(-1).unsqueeze(-1) * input;
    auto y_t = (Ch.select(1, t).unsqueeze(-1) * h).sum(-2);  // C_t^T h_t: (B, H, P)
    if (D.defined()) y_t = y_t + D.unsqueeze(-1) * x.select(1, t);
    ys.push_back(y_t);
  }
  if (ys.empty()) return at::zeros_like(x);
  return at::stack(ys, 1);
}

}  // namespace bla::ops
