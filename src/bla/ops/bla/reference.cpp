// BLA's reference form: the token-by-token slot recurrence, each step applied
// as its three steps (forget, shift, insert; docs/bla.md "One step of the slot
// memory"), then the masked softmax over the slots. Slow and plain: the
// yardstick the chunked form, the decode step and the kernels are held to.
#include <torch/torch.h>

#include <limits>
#include <vector>

#include "bla/ops/bla/bla.h"
#include "bla/ops/bla/internal.h"
#include "bla/ops/checks.h"

namespace bla::ops {

at::Tensor blurry_window_attention_reference(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                             const BlaOptions& opt) {
  opt.validate();
  bla_internal::check_sequence_inputs("blurry_window_attention_reference", q_in, k_in, v_in);
  const at::ScalarType type = compute_dtype(q_in.scalar_type());
  const at::Tensor q = q_in.to(type), k = k_in.to(type), v = v_in.to(type);
  const int64_t batch = q.size(0), length = q.size(1), heads = q.size(2);
  const int64_t dk = q.size(3), dv = v.size(3), n = opt.slots;
  // Straight from float64 operators, not the cache: the reference shares as
  // little as possible with the forms it checks.
  const BlaOperators f64 = make_bla_operators(opt.window, n, 1);
  const auto to = [&](const at::Tensor& t) { return t.to(q.device(), q.scalar_type()); };
  const at::Tensor shift = to(f64.shift), read = to(f64.forget_read), write = to(f64.forget_write);
  const double r = static_cast<double>(opt.window) / static_cast<double>(n);
  const double scale = resolve_scale(opt.scale, dk);

  // One step of the slot memory, as its three steps (docs/bla.md).
  const auto step = [&](const at::Tensor& slots, const at::Tensor& x) {  // (B, H, N, D), (B, H, D)
    const at::Tensor leaving = at::einsum("l,bhld->bhd", {read, slots});                  // value at age W-1
    const at::Tensor forgotten = slots - write.view({1, 1, n, 1}) * leaving.unsqueeze(2);  // (I - p g^T) S
    const at::Tensor shifted = at::einsum("jl,bhld->bhjd", {shift, forgotten});           // Shift S
    const at::Tensor inserted = at::cat({shifted.slice(2, 0, 1) + x.unsqueeze(2) / r, shifted.slice(2, 1, n)}, 2);
    return inserted;
  };

  at::Tensor slot_keys = at::zeros({batch, heads, n, dk}, q.options());
  at::Tensor slot_values = at::zeros({batch, heads, n, dv}, v.options());
  const at::Tensor mask = bla_internal::age_mask(0, length, opt, q.device());  // (T, N)
  std::vector<at::Tensor> outputs;
  outputs.reserve(static_cast<size_t>(length));
  for (int64_t t = 0; t < length; ++t) {
    slot_keys = step(slot_keys, k.select(1, t));
    slot_values = step(slot_values, v.select(1, t));
    at::Tensor scores = at::einsum("bhnd,bhd->bhn", {slot_keys, q.select(1, t)}) * scale;
    scores = scores.masked_fill(mask[t], -std::numeric_limits<double>::infinity());
    const at::Tensor weights = at::softmax(scores, -1);
    outputs.push_back(at::einsum("bhn,bhnd->bhd", {weights, slot_values}));
  }
  if (outputs.empty()) return at::empty({batch, 0, heads, dv}, v_in.options());
  return at::stack(outputs, 1).to(v_in.scalar_type());
}

}  // namespace bla::ops
