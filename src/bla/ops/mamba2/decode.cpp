// The mamba2 op's decode step: one token against the state h of every head.
#include <torch/torch.h>

#include "bla/ops/checks.h"
#include "bla/ops/mamba2/internal.h"
#include "bla/ops/mamba2/mamba2.h"

namespace bla::ops {

SsdState ssd_initial_state(int64_t batch, int64_t heads, int64_t d_state, int64_t head_dim,
                           const at::TensorOptions& options) {
  SsdState s;
  s.state = at::zeros({batch, heads, d_state, head_dim}, options);
  s.position = 0;
  return s;
}

at::Tensor ssd_decode_step(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& Bm,
                           const at::Tensor& Cm, const at::Tensor& D, SsdState& state) {
  require_dim("ssd", "x", x, 3, "(batch, heads, head_dim) in a decode step");
  require_dim("ssd", "Bm", Bm, 3, "(batch, groups, d_state) in a decode step");
  mamba2_internal::SsdDims d{x.size(0), 1, x.size(1), x.size(2), Bm.size(1), Bm.size(2)};
  require_shape("ssd", "dt", dt, {d.batch, d.heads}, "(batch, heads) in a decode step");
  require_shape("ssd", "A", A, {d.heads}, "(heads)");
  require_shape("ssd", "Cm", Cm, {d.batch, d.groups, d.d_state}, "(batch, groups, d_state) in a decode step");
  if (D.defined()) require_shape("ssd", "D", D, {d.heads}, "(heads)");
  mamba2_internal::check_groups(d.heads, d.groups);
  mamba2_internal::check_state(state, d);

  auto dt4 = dt.unsqueeze(-1).unsqueeze(-1);                    // (B, H, 1, 1)
  auto Bh = mamba2_internal::expand_groups(Bm, d.heads);        // (B, H, N)
  auto Ch = mamba2_internal::expand_groups(Cm, d.heads);
  auto h = (dt4 * A.view({1, d.heads, 1, 1})).exp() * state.state + dt4 * Bh.unsqueeze(-1) * x.unsqueeze(-2);
  auto y = Ch.unsqueeze(-2).matmul(h.to(x.scalar_type())).squeeze(-2);  // (B, H, P)
  if (D.defined()) y = y + D.to(x.scalar_type()).unsqueeze(-1) * x;
  state.state = h.to(state.state.scalar_type());
  state.position += 1;
  return y;
}

}  // namespace bla::ops
