// Gated slot attention: the chunked training form (docs/mixers.md "GSA").
//
// The slot memories are two GLA-like recurrences sharing the gate, so GSA
// runs chunked_gated_recurrence (ops/gla/gla.h) twice:
//   pass 1: S1 = K~^T (Dk x m), S1_t = S1_{t-1} diag(alpha_t) + k_t s_t^T
//           (keys k, "values" s, decay on the value axis); its output
//           S1_t^T (scale q_t) = scale K~_t q_t is the m slot scores;
//   softmax over the slots: p_t;
//   pass 2: S2 = V~ (m x Dv), S2_t = diag(alpha_t) S2_{t-1} + s_t v_t^T
//           (keys s, values v, decay on the key axis), queried with p_t:
//           o_t = V~_t^T p_t.
// The slot memories K~_t, V~_t are never materialised per token.
#include <torch/torch.h>

#include "bla/ops/checks.h"
#include "bla/ops/gla/gla.h"
#include "bla/ops/gsa/gsa.h"
#include "bla/ops/gsa/internal.h"

namespace bla::ops {
namespace {

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
  gsa_internal::check_sequence_inputs(q, k, v, f);
  check_chunking("gsa", opt.chunk, opt.subchunk);
  gsa_internal::check_scale(opt);
  return run_chunked(q, k, v, f, at::Tensor(), at::Tensor(), opt).output;
}

at::Tensor gated_slot_attention_with_state(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& f, GsaState& state, const GsaOptions& opt) {
  gsa_internal::check_sequence_inputs(q, k, v, f);
  check_chunking("gsa", opt.chunk, opt.subchunk);
  gsa_internal::check_scale(opt);
  gsa_internal::check_state(state, q.size(0), q.size(2), f.size(3), q.size(3), v.size(3));
  auto result = run_chunked(q, k, v, f, state.keys, state.values, opt);
  state.keys = result.keys;
  state.values = result.values;
  state.position += q.size(1);
  return result.output;
}

}  // namespace bla::ops
