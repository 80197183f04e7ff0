// The mamba2 op's input checks and group expansion (internal.h).
#include "bla/ops/mamba2/internal.h"

#include <torch/torch.h>

#include <string>
#include <vector>

#include "bla/ops/checks.h"

namespace bla::ops::mamba2_internal {

void check_chunk(const SsdOptions& opt) {
  if (opt.chunk < 1) {
    fail("ssd chunk (" + std::to_string(opt.chunk) + ") must be >= 1; use a positive chunk length such as 64");
  }
}

void check_groups(int64_t heads, int64_t groups) {
  if (groups < 1 || heads % groups != 0) {
    fail("ssd heads (" + std::to_string(heads) + ") must be divisible by groups (" + std::to_string(groups) +
         "); set ngroups to a divisor of the head count");
  }
}

SsdDims check_sequence_inputs(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& Bm,
                              const at::Tensor& Cm, const at::Tensor& D) {
  require_dim("ssd", "x", x, 4, "(batch, seq, heads, head_dim)");
  require_dim("ssd", "Bm", Bm, 4, "(batch, seq, groups, d_state)");
  SsdDims d{x.size(0), x.size(1), x.size(2), x.size(3), Bm.size(2), Bm.size(3)};
  require_shape("ssd", "dt", dt, {d.batch, d.seq, d.heads}, "(batch, seq, heads)");
  require_shape("ssd", "A", A, {d.heads}, "(heads)");
  require_shape("ssd", "Bm", Bm, {d.batch, d.seq, d.groups, d.d_state}, "(batch, seq, groups, d_state)");
  require_shape("ssd", "Cm", Cm, {d.batch, d.seq, d.groups, d.d_state}, "(batch, seq, groups, d_state)");
  if (D.defined()) require_shape("ssd", "D", D, {d.heads}, "(heads)");
  check_groups(d.heads, d.groups);
  return d;
}

void check_state(const SsdState& state, const SsdDims& d) {
  if (!state.state.defined() || state.state.sizes() != at::IntArrayRef({d.batch, d.heads, d.d_state, d.head_dim})) {
    fail("ssd state must be (batch, heads, d_state, head_dim) = " +
         shape_of({d.batch, d.heads, d.d_state, d.head_dim}) + "; got " + shape_of(state.state) +
         "; create it with ssd_initial_state");
  }
}

at::Tensor expand_groups(const at::Tensor& t, int64_t heads) {
  const int64_t groups = t.size(-2);
  if (groups == heads) return t;
  std::vector<int64_t> expanded(t.sizes().begin(), t.sizes().end());
  expanded.insert(expanded.end() - 1, heads / groups);
  std::vector<int64_t> merged(t.sizes().begin(), t.sizes().end());
  merged[merged.size() - 2] = heads;
  return t.unsqueeze(-2).expand(expanded).reshape(merged);
}

}  // namespace bla::ops::mamba2_internal
