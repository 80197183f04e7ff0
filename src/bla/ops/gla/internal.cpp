// GLA's input checks (internal.h).
#include "bla/ops/gla/internal.h"

#include <torch/torch.h>

#include <string>
#include <vector>

#include "bla/ops/checks.h"

namespace bla::ops::gla_internal {

void check_sequence_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g) {
  if (q.dim() != 4) fail("gla q must be 4-D (batch, seq, heads, key_dim); got shape " + shape_of(q));
  if (k.sizes() != q.sizes()) fail("gla k must have the shape of q " + shape_of(q) + "; got " + shape_of(k));
  if (g.sizes() != q.sizes()) fail("gla g must have the shape of q " + shape_of(q) + "; got " + shape_of(g));
  if (v.dim() != 4 || v.size(0) != q.size(0) || v.size(1) != q.size(1) || v.size(2) != q.size(2))
    fail("gla v must be (batch, seq, heads, value_dim) with batch, seq, heads of q " + shape_of(q) + "; got " +
         shape_of(v));
  if (k.scalar_type() != q.scalar_type() || v.scalar_type() != q.scalar_type() || g.scalar_type() != q.scalar_type())
    fail("gla q, k, v and g must share one dtype; got " + std::string(c10::toString(q.scalar_type())) + ", " +
         c10::toString(k.scalar_type()) + ", " + c10::toString(v.scalar_type()) + ", " +
         c10::toString(g.scalar_type()));
}

void check_state(const at::Tensor& state, int64_t batch, int64_t heads, int64_t key_dim, int64_t value_dim) {
  const std::vector<int64_t> expected{batch, heads, key_dim, value_dim};
  if (!state.defined() || state.sizes() != at::IntArrayRef(expected))
    fail("gla state must have shape (batch, heads, key_dim, value_dim) = " + shape_of(expected) + "; got " +
         shape_of(state) + "; make it with gla_initial_state");
}

}  // namespace bla::ops::gla_internal
