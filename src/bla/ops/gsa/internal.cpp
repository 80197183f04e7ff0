// GSA's input checks (internal.h).
#include "bla/ops/gsa/internal.h"

#include <torch/torch.h>

#include <sstream>
#include <string>
#include <vector>

#include "bla/ops/checks.h"

namespace bla::ops::gsa_internal {

void check_scale(const GsaOptions& opt) {
  if (opt.scale > 0.0) return;
  std::ostringstream value;
  value << opt.scale;
  fail("gsa scale (" + value.str() + ") must be > 0; the default is 1.0");
}

void check_sequence_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& f) {
  if (q.dim() != 4) fail("gsa q must be 4-D (batch, seq, heads, key_dim); got shape " + shape_of(q));
  if (k.sizes() != q.sizes()) fail("gsa k must have the shape of q " + shape_of(q) + "; got " + shape_of(k));
  auto same_leading = [&](const at::Tensor& t) {
    return t.dim() == 4 && t.size(0) == q.size(0) && t.size(1) == q.size(1) && t.size(2) == q.size(2);
  };
  if (!same_leading(v))
    fail("gsa v must be (batch, seq, heads, value_dim) with batch, seq, heads of q " + shape_of(q) + "; got " +
         shape_of(v));
  if (!same_leading(f))
    fail("gsa f must be (batch, seq, heads, slots) with batch, seq, heads of q " + shape_of(q) + "; got " +
         shape_of(f));
  if (f.size(3) < 1) fail("gsa f must have at least one slot; got shape " + shape_of(f));
  if (k.scalar_type() != q.scalar_type() || v.scalar_type() != q.scalar_type() || f.scalar_type() != q.scalar_type())
    fail("gsa q, k, v and f must share one dtype; got " + std::string(c10::toString(q.scalar_type())) + ", " +
         c10::toString(k.scalar_type()) + ", " + c10::toString(v.scalar_type()) + ", " +
         c10::toString(f.scalar_type()));
}

void check_state(const GsaState& state, int64_t batch, int64_t heads, int64_t slots, int64_t key_dim,
                 int64_t value_dim) {
  auto check = [](const char* name, const at::Tensor& t, std::vector<int64_t> expected, const char* dims) {
    if (t.defined() && t.sizes() == at::IntArrayRef(expected)) return;
    fail(std::string("gsa state ") + name + " must have shape " + dims + " = " + shape_of(expected) + "; got " +
         shape_of(t) + "; make it with gsa_initial_state");
  };
  check("keys", state.keys, {batch, heads, slots, key_dim}, "(batch, heads, slots, key_dim)");
  check("values", state.values, {batch, heads, slots, value_dim}, "(batch, heads, slots, value_dim)");
}

}  // namespace bla::ops::gsa_internal
