// The checks of BLA's options and inputs, and its age mask (internal.h).
#include "bla/ops/bla/internal.h"

#include <torch/torch.h>

#include <sstream>
#include <vector>

#include "bla/ops/checks.h"

namespace bla::ops {

void BlaOptions::validate() const {
  if (window < 1) {
    std::ostringstream os;
    os << "window (" << window << ") must be >= 1: raise window";
    fail(os.str());
  }
  if (slots < 1) {
    std::ostringstream os;
    os << "slots (" << slots << ") must be >= 1: raise slots";
    fail(os.str());
  }
  if (slots > window) {
    std::ostringstream os;
    os << "slots (" << slots << ") must be <= window (" << window << "): lower slots or raise window";
    fail(os.str());
  }
  if (chunk < 1) {
    std::ostringstream os;
    os << "chunk (" << chunk << ") must be >= 1: raise chunk";
    fail(os.str());
  }
}

namespace bla_internal {

void fail_in(const std::string& where, const std::string& message) { fail(where + ": " + message); }

void check_sequence_inputs(const std::string& where, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (!q.defined() || !k.defined() || !v.defined()) fail_in(where, "q, k and v must be defined tensors");
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) {
    std::ostringstream os;
    os << "q, k, v must be (batch, seq, heads, head_dim); got q " << q.sizes() << ", k " << k.sizes() << ", v "
       << v.sizes();
    fail_in(where, os.str());
  }
  for (int64_t d = 0; d < 3; ++d) {
    if (q.size(d) != k.size(d) || q.size(d) != v.size(d)) {
      std::ostringstream os;
      os << "q, k, v must agree on (batch, seq, heads); got q " << q.sizes() << ", k " << k.sizes() << ", v "
         << v.sizes();
      fail_in(where, os.str());
    }
  }
  if (q.size(3) != k.size(3)) {
    std::ostringstream os;
    os << "q and k must have the same head_dim; got " << q.size(3) << " and " << k.size(3);
    fail_in(where, os.str());
  }
  if (!at::isFloatingType(q.scalar_type()) || q.scalar_type() != k.scalar_type() ||
      q.scalar_type() != v.scalar_type()) {
    std::ostringstream os;
    os << "q, k, v must share one floating dtype; got " << q.scalar_type() << ", " << k.scalar_type() << ", "
       << v.scalar_type();
    fail_in(where, os.str());
  }
  if (q.device() != k.device() || q.device() != v.device()) fail_in(where, "q, k, v must be on the same device");
}

void check_state(const std::string& where, const BlaState& state, const at::Tensor& q, const at::Tensor& v,
                 const BlaOptions& opt) {
  const int64_t batch = q.size(0), heads = q.dim() == 4 ? q.size(2) : q.size(1);
  const int64_t dk = q.size(-1), dv = v.size(-1);
  const std::vector<int64_t> keys_shape{batch, heads, opt.slots, dk}, values_shape{batch, heads, opt.slots, dv};
  if (!state.keys.defined() || !state.values.defined() || state.keys.sizes().vec() != keys_shape ||
      state.values.sizes().vec() != values_shape) {
    std::ostringstream os;
    os << "state must hold keys " << at::IntArrayRef(keys_shape) << " and values " << at::IntArrayRef(values_shape)
       << " (batch, heads, slots, head_dim); got keys "
       << (state.keys.defined() ? state.keys.sizes() : at::IntArrayRef{}) << ", values "
       << (state.values.defined() ? state.values.sizes() : at::IntArrayRef{})
       << ": make it with bla_initial_state and the same options";
    fail_in(where, os.str());
  }
  if (state.position < 0) fail_in(where, "state position must be >= 0");
}

at::Tensor age_mask(int64_t first_position, int64_t length, const BlaOptions& opt, at::Device device) {
  // Compared as j W > t N in integers so N == W and integer r are exact.
  const auto longs = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor t = at::arange(first_position, first_position + length, longs);
  const at::Tensor j = at::arange(opt.slots, longs);
  return (j * opt.window).unsqueeze(0) > (t * opt.slots).unsqueeze(1);
}

bool mask_needed(int64_t position, const BlaOptions& opt) {
  return (opt.slots - 1) * opt.window > position * opt.slots;
}

}  // namespace bla_internal
}  // namespace bla::ops
