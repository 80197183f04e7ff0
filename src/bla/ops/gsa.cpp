// Gated slot attention: reference recurrence, chunked training form, decode
// step (docs/mixers.md "GSA").
//
// Chunked form: the slot memories are two GLA-like recurrences sharing the
// gate, so GSA runs chunked_gated_recurrence (gla.cpp) twice:
//   pass 1: S1 = K~^T (Dk x m), S1_t = S1_{t-1} diag(alpha_t) + k_t s_t^T
//           (keys k, "values" s, decay on the value axis); its output
//           S1_t^T (scale q_t) = scale K~_t q_t is the m slot scores;
//   softmax over the slots: p_t;
//   pass 2: S2 = V~ (m x Dv), S2_t = diag(alpha_t) S2_{t-1} + s_t v_t^T
//           (keys s, values v, decay on the key axis), queried with p_t:
//           o_t = V~_t^T p_t.
// The slot memories K~_t, V~_t are never materialised per token.
#include "bla/ops/gsa.h"

#include <torch/torch.h>

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bla/ops/gla.h"

namespace bla::ops {
namespace {

std::string shape_of(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument("bla: " + message); }

at::ScalarType compute_dtype(at::ScalarType dtype) {
  return (dtype == at::kHalf || dtype == at::kBFloat16) ? at::kFloat : dtype;
}

void check_scale(const GsaOptions& opt) {
  if (opt.scale > 0.0) return;
  std::ostringstream value;
  value << opt.scale;
  fail("gsa scale (" + value.str() + ") must be > 0; the default is 1.0");
}

// q, k (B, T, H, Dk); v (B, T, H, Dv); f (B, T, H, m).
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
    std::ostringstream want;
    want << at::IntArrayRef(expected);
    fail(std::string("gsa state ") + name + " must have shape " + dims + " = " + want.str() + "; got " +
         (t.defined() ? shape_of(t) : std::string("an undefined tensor")) + "; make it with gsa_initial_state");
  };
  check("keys", state.keys, {batch, heads, slots, key_dim}, "(batch, heads, slots, key_dim)");
  check("values", state.values, {batch, heads, slots, value_dim}, "(batch, heads, slots, value_dim)");
}

// Both passes; `keys`/`values` are the initial slots (B, H, m, D) or undefined.
struct ChunkedGsa {
  at::Tensor output;  // (B, T, H, Dv)
  at::Tensor keys, values;
};

ChunkedGsa run_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& f,
                       const at::Tensor& keys, const at::Tensor& values, const GsaOptions& opt) {
  auto heads_first = [](const at::Tensor& t) { return t.transpose(1, 2); };
  // Pass 1 in the compute dtype, so the scores reach the softmax unrounded.
  const auto dtype = compute_dtype(f.scalar_type());
  const auto fh = heads_first(f).to(dtype);
  const auto write = -at::expm1(fh);  // s = 1 - alpha, exact for small |f|
  const auto scores = chunked_gated_recurrence(heads_first(q).to(dtype), heads_first(k), write, fh, DecayAxis::Value,
                                               keys.defined() ? keys.transpose(-1, -2) : at::Tensor(), opt.chunk,
                                               opt.subchunk, opt.scale);
  const auto weights = at::softmax(scores.output, -1);  // p_t over the m slots
  const auto read = chunked_gated_recurrence(weights, write, heads_first(v), fh, DecayAxis::Key, values, opt.chunk,
                                             opt.subchunk, 1.0);
  return {read.output.to(q.scalar_type()).transpose(1, 2), scores.final_state.transpose(-1, -2), read.final_state};
}

}  // namespace

at::Tensor gated_slot_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& f,
                                const GsaOptions& opt) {
  check_sequence_inputs(q, k, v, f);
  check_chunking("gsa", opt.chunk, opt.subchunk);
  check_scale(opt);
  return run_chunked(q, k, v, f, at::Tensor(), at::Tensor(), opt).output;
}

at::Tensor gated_slot_attention_with_state(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& f, GsaState& state, const GsaOptions& opt) {
  check_sequence_inputs(q, k, v, f);
  check_chunking("gsa", opt.chunk, opt.subchunk);
  check_scale(opt);
  check_state(state, q.size(0), q.size(2), f.size(3), q.size(3), v.size(3));
  auto result = run_chunked(q, k, v, f, state.keys, state.values, opt);
  state.keys = result.keys;
  state.values = result.values;
  state.position += q.size(1);
  return result.output;
}

at::Tensor gated_slot_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& f, const GsaOptions& opt) {
  check_sequence_inputs(q, k, v, f);
  check_scale(opt);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), m = f.size(3);
  auto keys = at::zeros({B, H, m, q.size(3)}, q.options());
  auto values = at::zeros({B, H, m, v.size(3)}, q.options());
  std::vector<at::Tensor> outputs;
  for (int64_t t = 0; t < T; ++t) {
    const auto alpha = f.select(1, t).exp().unsqueeze(-1);  // (B, H, m, 1)
    const auto write = 1.0 - alpha;
    keys = alpha * keys + write * k.select(1, t).unsqueeze(-2);
    values = alpha * values + write * v.select(1, t).unsqueeze(-2);
    const auto scores = opt.scale * (keys * q.select(1, t).unsqueeze(-2)).sum(-1);  // K~ q, (B, H, m)
    const auto weights = at::softmax(scores, -1);
    outputs.push_back((weights.unsqueeze(-1) * values).sum(-2));  // V~^T p
  }
  if (outputs.empty()) return at::zeros({B, 0, H, v.size(3)}, q.options());
  return at::stack(outputs, 1);
}

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
  check_scale(opt);
  if (q.dim() != 3) fail("gsa decode q must be 3-D (batch, heads, key_dim); got shape " + shape_of(q));
  if (k.sizes() != q.sizes()) fail("gsa decode k must have the shape of q " + shape_of(q) + "; got " + shape_of(k));
  if (v.dim() != 3 || v.size(0) != q.size(0) || v.size(1) != q.size(1))
    fail("gsa decode v must be (batch, heads, value_dim) with batch, heads of q " + shape_of(q) + "; got " +
         shape_of(v));
  if (f.dim() != 3 || f.size(0) != q.size(0) || f.size(1) != q.size(1))
    fail("gsa decode f must be (batch, heads, slots) with batch, heads of q " + shape_of(q) + "; got " + shape_of(f));
  check_state(state, q.size(0), q.size(1), f.size(2), q.size(2), v.size(2));
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
