// GLA's decode step: one token against the state S (d_k x d_v per head),
// kept in float32 for half/bfloat16 inputs.
#include <torch/torch.h>

#include "bla/ops/checks.h"
#include "bla/ops/gla/gla.h"
#include "bla/ops/gla/internal.h"

namespace bla::ops {

GlaState gla_initial_state(int64_t batch, int64_t heads, int64_t key_dim, int64_t value_dim,
                           const at::TensorOptions& options) {
  GlaState state;
  auto opts = options.dtype(compute_dtype(c10::typeMetaToScalarType(options.dtype())));
  state.state = at::zeros({batch, heads, key_dim, value_dim}, opts);
  return state;
}

at::Tensor gla_decode_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                           GlaState& state, const GlaOptions& opt) {
  if (q.dim() != 3) fail("gla decode q must be 3-D (batch, heads, key_dim); got shape " + shape_of(q));
  if (k.sizes() != q.sizes()) fail("gla decode k must have the shape of q " + shape_of(q) + "; got " + shape_of(k));
  if (g.sizes() != q.sizes()) fail("gla decode g must have the shape of q " + shape_of(q) + "; got " + shape_of(g));
  if (v.dim() != 3 || v.size(0) != q.size(0) || v.size(1) != q.size(1))
    fail("gla decode v must be (batch, heads, value_dim) with batch, heads of q " + shape_of(q) + "; got " +
         shape_of(v));
  gla_internal::check_state(state.state, q.size(0), q.size(1), q.size(2), v.size(2));
  const auto dtype = state.state.scalar_type();
  const double scale = resolve_scale(opt.scale, q.size(2));
  const auto S = g.to(dtype).exp().unsqueeze(-1) * state.state + k.to(dtype).unsqueeze(-1) * v.to(dtype).unsqueeze(-2);
  state.state = S;
  state.position += 1;
  return (scale * at::matmul(q.to(dtype).unsqueeze(-2), S).squeeze(-2)).to(q.scalar_type());
}

}  // namespace bla::ops
