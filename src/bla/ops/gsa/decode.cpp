// GSA's decode step: one token against the m slots of keys and values, kept
// in float32 for half/bfloat16 inputs.
#include <torch/torch.h>

#include "bla/ops/checks.h"
#include "bla/ops/gsa/gsa.h"
#include "bla/ops/gsa/internal.h"

namespace bla::ops {

GsaState gsa_initial_state(int64_t batch, int64_t heads, int64_t slots, int64_t key_dim, int64_t value_dim,
                           const at::TensorOptions& options) {
  auto opts = options.dtype(compute_dtype(c10::typeMetaToScalarType(options.dtype())));
  GsaState state;
  state.keys = at::zeros({batch, heads, slots, key_dim}, opts);
  state.values = at::zeros({batch, heads, slots, value_dim}, opts);
  return state;
}

at::Tensor gsa_decode_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& f,
                           GsaState& state, const GsaOptions& opt) {
  gsa_internal::check_scale(opt);
  if (q.dim() != 3) fail("gsa decode q must be 3-D (batch, heads, key_dim); got shape " + shape_of(q));
  if (k.sizes() != q.sizes()) fail("gsa decode k must have the shape of q " + shape_of(q) + "; got " + shape_of(k));
  if (v.dim() != 3 || v.size(0) != q.size(0) || v.size(1) != q.size(1))
    fail("gsa decode v must be (batch, heads, value_dim) with batch, heads of q " + shape_of(q) + "; got " +
         shape_of(v));
  if (f.dim() != 3 || f.size(0) != q.size(0) || f.size(1) != q.size(1))
    fail("gsa decode f must be (batch, heads, slots) with batch, heads of q " + shape_of(q) + "; got " + shape_of(f));
  gsa_internal::check_state(state, q.size(0), q.size(1), f.size(2), q.size(2), v.size(2));
  const auto dtype = state.keys.scalar_type();
  const auto fd = f.to(dtype).unsqueeze(-1);  // (B, H, m, 1)
  const auto alpha = fd.exp();
  const auto write = -at::expm1(fd);
  state.keys = alpha * state.keys + write * k.to(dtype).unsqueeze(-2);
  state.values = alpha * state.values + write * v.to(dtype).unsqueeze(-2);
  state.position += 1;
  const auto scores = opt.scale * at::matmul(state.keys, q.to(dtype).unsqueeze(-1)).squeeze(-1);  // (B, H, m)
  const auto weights = at::softmax(scores, -1);
  return at::matmul(weights.unsqueeze(-2), state.values).squeeze(-2).to(q.scalar_type());
}

}  // namespace bla::ops
