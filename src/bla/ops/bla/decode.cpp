// BLA's decode step: one token at a time over a fixed-size BlaState
// (docs/bla.md "Decoding"): S_t = A S_{t-1} + b x_t^T, then the masked
// softmax over the slots. The state never grows.
#include <torch/torch.h>

#include <limits>
#include <sstream>
#include <string>

#include "bla/ops/bla/bla.h"
#include "bla/ops/bla/internal.h"
#include "bla/ops/checks.h"

namespace bla::ops {

BlaState bla_initial_state(int64_t batch, int64_t heads, int64_t dk, int64_t dv, const BlaOptions& opt,
                           const at::TensorOptions& options) {
  opt.validate();
  return BlaState{at::zeros({batch, heads, opt.slots, dk}, options), at::zeros({batch, heads, opt.slots, dv}, options),
                  0};
}

at::Tensor bla_decode_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, BlaState& state,
                           const BlaOptions& opt) {
  opt.validate();
  const std::string where = "bla_decode_step";
  if (!q.defined() || !k.defined() || !v.defined() || q.dim() != 3 || k.dim() != 3 || v.dim() != 3 ||
      q.sizes() != k.sizes() || q.size(0) != v.size(0) || q.size(1) != v.size(1)) {
    std::ostringstream os;
    os << "q, k, v must be (batch, heads, head_dim) with q and k alike; got q "
       << (q.defined() ? q.sizes() : at::IntArrayRef{}) << ", k " << (k.defined() ? k.sizes() : at::IntArrayRef{})
       << ", v " << (v.defined() ? v.sizes() : at::IntArrayRef{});
    bla_internal::fail_in(where, os.str());
  }
  bla_internal::check_state(where, state, q, v, opt);
  // Computed like the chunked form (float32 for half/bf16); the state keeps
  // the dtype it was made with.
  const at::ScalarType type = compute_dtype(q.scalar_type());
  // The chunk size does not matter here; reuse the training form's cache entry.
  const BlaOperators ops = bla_operators(opt.window, opt.slots, opt.chunk, type, q.device());
  const at::Tensor insert = ops.b.view({opt.slots, 1});

  // S_t = A S_{t-1} + b x_t^T: one application of A, the state keeps its size.
  const at::Tensor keys = at::matmul(ops.A, state.keys.to(type)) + insert * k.to(type).unsqueeze(2);
  const at::Tensor values = at::matmul(ops.A, state.values.to(type)) + insert * v.to(type).unsqueeze(2);

  const double scale = resolve_scale(opt.scale, q.size(-1));
  at::Tensor scores = at::matmul(keys, q.to(type).unsqueeze(-1)).squeeze(-1) * scale;  // (B, H, N)
  if (bla_internal::mask_needed(state.position, opt))
    scores = scores.masked_fill(bla_internal::age_mask(state.position, 1, opt, q.device()).squeeze(0),
                                -std::numeric_limits<double>::infinity());
  const at::Tensor weights = at::softmax(scores, -1);
  state.keys = keys.to(state.keys.scalar_type());
  state.values = values.to(state.values.scalar_type());
  state.position += 1;
  return at::matmul(weights.unsqueeze(-2), values).squeeze(-2).to(v.scalar_type());  // (B, H, Dv)
}

}  // namespace bla::ops
