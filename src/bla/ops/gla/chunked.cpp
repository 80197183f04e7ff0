// Gated linear attention: the chunked training form (docs/mixers.md "GLA"),
// and the chunked machinery GSA shares.
//
// The chunked form (chunked_gated_recurrence) in one place:
// per chunk of C tokens with local positions i, the cumulative log-decay
// b_i = g_0 + ... + g_i (relative to the chunk start) gives, for the
// key-axis decay,
//   S_i = diag(e^{b_i}) S_0 + sum_{j<=i} diag(e^{b_i - b_j}) k_j v_j^T,
//   o_i = scale * [ (q_i * e^{b_i})^T S_0                          (inter-chunk)
//                   + sum_{j<=i} (q_i . (k_j * e^{b_i - b_j})) v_j ] (intra-chunk)
//   S_C = diag(e^{b_{C-1}}) S_0 + sum_j (k_j * e^{b_{C-1} - b_j}) v_j^T (carry).
// Every exponent above is <= 0 (b is non-increasing since g <= 0), so nothing
// overflows however long the sequence or strong the decay. The intra-chunk
// scores must not be factored as (q_i e^{b_i}) . (k_j e^{-b_j}): e^{-b_j}
// overflows float32 once the decay within a chunk passes ~88.
//
// Memory choice for the intra-chunk scores: the exact pairwise tensor
// e^{b_i - b_j} is (C, C, Dk) per chunk. We split a chunk into sub-chunks of
// c tokens (GlaOptions::subchunk, 16) and
//   - within a sub-chunk (diagonal blocks) form the pairwise tensor, (C, c, Dk);
//   - for a query sub-chunk p and every earlier key j, factor through the
//     decay at the end of sub-chunk p-1, r_p = b_{pc-1}, which lies between:
//       e^{b_i - b_j} = e^{b_i - r_p} * e^{r_p - b_j}, both exponents <= 0,
//     so the block is a plain matmul of (c, Dk) by (C, Dk)^T per sub-chunk,
//     storing (C/c, C, Dk) rescaled keys.
// Peak extra memory per chunk is C*Dk*(C/c + c) numbers instead of C*C*Dk
// (3.2x less at C = 64, c = 16), with no overflow anywhere. g <= 0 is assumed,
// not checked (a check would synchronise the GPU every call).
//
// All chunks are processed at once as batched tensor ops; the only loop is the
// carry S_{n+1} = diag(e^{b_last,n}) S_n + U_n over chunks (one fused
// multiply-add per chunk).
//
// Precision: with strong decays |b| reaches thousands within a chunk, where
// float32 keeps only ~1e-4 of the small differences b_i - b_j that matter. So
// b is summed in float64, and the exponents b_i, b_{C-1} - b_j, r_p - b_j and
// b_i - r_p are formed there as differences before the cast to the compute
// dtype; the pairwise differences inside a sub-chunk come from the cast
// b_i - r_p, which spans at most c tokens. Half/bfloat16 inputs are computed
// in float32; outputs return in the input dtype and states stay float32.
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bla/ops/checks.h"
#include "bla/ops/gla/gla.h"
#include "bla/ops/gla/internal.h"

namespace bla::ops {
namespace {

// The intra-chunk output for one decay axis, all chunks at once.
// qc, kc: (..., C, Dk); vc: (..., C, Dv); b: cumulative log-decay (..., C, Dg)
// in float64 (see chunked_gated_recurrence); every exponent is formed there
// as a difference and only then cast to the compute dtype of qc.
at::Tensor intra_chunk(const at::Tensor& qc, const at::Tensor& kc, const at::Tensor& vc, const at::Tensor& b,
                       DecayAxis axis, int64_t sub) {
  const int64_t C = qc.size(-2);
  const int64_t ns = C / sub;
  const auto dtype = qc.scalar_type();
  const auto lead = qc.sizes().slice(0, qc.dim() - 2).vec();  // (B, H, nc)
  auto blocked = [&](const at::Tensor& t) {                   // (..., C, D) -> (..., ns, c, D)
    auto shape = lead;
    shape.insert(shape.end(), {ns, sub, t.size(-1)});
    return t.reshape(shape);
  };
  const auto bool_opts = at::TensorOptions().dtype(at::kBool).device(qc.device());
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(qc.device());

  // r_p: cumulative decay just before sub-chunk p (b_{pc-1}; 0 for p = 0,
  // whose off-diagonal block is empty anyway).
  const auto b_before = at::constant_pad_nd(b, {0, 0, 1, 0}).narrow(-2, 0, C);  // b_{i-1}
  const auto ref = blocked(b_before).select(-2, 0);                             // (..., ns, Dg)
  // Key j lies in an earlier sub-chunk than query sub-chunk p: j < p*c.
  const auto key_pos = at::arange(C, long_opts);
  const auto earlier = key_pos.unsqueeze(0) < (at::arange(ns, long_opts) * sub).unsqueeze(1);  // (ns, C)
  // Causal mask inside a sub-chunk: j <= i.
  const auto causal = at::ones({sub, sub}, bool_opts).tril();

  // e^{r_p - b_j} for earlier keys; masked exponents set to 0 before exp (they
  // would be positive and could overflow; where() keeps their gradient zero).
  const auto off_exponent =
      at::where(earlier.unsqueeze(-1), ref.unsqueeze(-2) - b.unsqueeze(-3), at::zeros({}, b.options()));
  const auto off_decay = off_exponent.to(dtype).exp();  // (..., ns, C, Dg)
  // b_i - r_p: the cumulative decay inside sub-chunk p, small in magnitude.
  const auto local = (blocked(b) - ref.unsqueeze(-2)).to(dtype);  // (..., ns, c, Dg)
  const auto query_decay = local.exp();                           // e^{b_i - r_p}
  // Pairwise e^{b_i - b_j} inside each sub-chunk, (..., ns, c, c, Dg).
  const auto diag_exponent =
      at::where(causal.unsqueeze(-1), local.unsqueeze(-2) - local.unsqueeze(-3), at::zeros({}, local.options()));
  const auto diag_decay = diag_exponent.exp();

  const auto q_blocks = blocked(qc);
  const auto k_blocks = blocked(kc);
  const auto v_blocks = blocked(vc);
  const auto zero = at::zeros({}, qc.options());

  if (axis == DecayAxis::Key) {
    // Scores A_ij = sum_d q_id k_jd e^{b_id - b_jd}, then o_i = sum_j A_ij v_j.
    const auto q_rel = q_blocks * query_decay;                     // (..., ns, c, Dk)
    const auto k_rel = kc.unsqueeze(-3) * off_decay;               // (..., ns, C, Dk)
    auto scores_off = at::matmul(q_rel, k_rel.transpose(-1, -2));  // (..., ns, c, C)
    scores_off = at::where(earlier.unsqueeze(-2), scores_off, zero);
    auto scores_diag = (q_blocks.unsqueeze(-2) * k_blocks.unsqueeze(-3) * diag_decay).sum(-1);  // (..., ns, c, c)
    scores_diag = at::where(causal, scores_diag, zero);
    auto square = lead;
    square.insert(square.end(), {C, C});
    auto shape = lead;
    shape.insert(shape.end(), {C, vc.size(-1)});
    return at::matmul(scores_off.reshape(square), vc) + at::matmul(scores_diag, v_blocks).reshape(shape);
  }

  // Value axis: o_ie = sum_j (q_i . k_j) v_je e^{b_ie - b_je}.
  auto blocked_rows = lead;
  blocked_rows.insert(blocked_rows.end(), {ns, sub, C});
  auto qk_off = at::matmul(qc, kc.transpose(-1, -2)).reshape(blocked_rows);  // (..., ns, c, C)
  qk_off = at::where(earlier.unsqueeze(-2), qk_off, zero);
  const auto v_rel = vc.unsqueeze(-3) * off_decay;                  // (..., ns, C, Dv)
  const auto out_off = query_decay * at::matmul(qk_off, v_rel);     // (..., ns, c, Dv)
  auto qk_diag = at::matmul(q_blocks, k_blocks.transpose(-1, -2));  // (..., ns, c, c)
  qk_diag = at::where(causal, qk_diag, zero);
  const auto out_diag = (qk_diag.unsqueeze(-1) * diag_decay * v_blocks.unsqueeze(-3)).sum(-2);  // (..., ns, c, Dv)
  auto shape = lead;
  shape.insert(shape.end(), {C, vc.size(-1)});
  return (out_off + out_diag).reshape(shape);
}

}  // namespace

void check_chunking(const char* op, int64_t chunk, int64_t subchunk) {
  const std::string name(op);
  if (chunk < 1)
    fail(name + " chunk (" + std::to_string(chunk) + ") must be >= 1; use a positive chunk length such as 64");
  if (subchunk < 1)
    fail(name + " subchunk (" + std::to_string(subchunk) +
         ") must be >= 1; use a positive sub-chunk length such as 16");
  const int64_t sub = std::min(subchunk, chunk);
  if (chunk % sub != 0)
    fail(name + " subchunk (" + std::to_string(subchunk) + ") must divide chunk (" + std::to_string(chunk) +
         "); pick a divisor of chunk such as 16 or 8");
}

std::string gla_chunk_problem(int64_t chunk) {
  const int64_t sub = gla_subchunk(chunk);
  if (chunk % sub == 0) return "";
  return "chunk (" + std::to_string(chunk) + ") must be <= " + std::to_string(sub) + " or a multiple of " +
         std::to_string(sub) + "; use e.g. 64";
}

GatedRecurrenceResult gla_internal::chunked_gated_recurrence_libtorch(const at::Tensor& q_in, const at::Tensor& k_in,
                                                                      const at::Tensor& v_in, const at::Tensor& g_in,
                                                                      DecayAxis axis, const at::Tensor& initial_state,
                                                                      int64_t chunk, int64_t subchunk, double scale) {
  const auto dtype = compute_dtype(q_in.scalar_type());
  const auto q = q_in.to(dtype) * scale;
  const auto k = k_in.to(dtype);
  const auto v = v_in.to(dtype);
  const auto g = g_in.to(dtype);
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dk = q.size(3), Dv = v.size(3);

  at::Tensor state = initial_state.defined() ? initial_state.to(dtype) : at::zeros({B, H, Dk, Dv}, q.options());
  if (T == 0) return {at::zeros({B, H, 0, Dv}, q_in.options()), state};

  // A short sequence needs no full chunk: round T up to whole sub-chunks.
  const int64_t sub = std::min(subchunk, chunk);
  const int64_t C = T < chunk ? (T + sub - 1) / sub * sub : chunk;
  const int64_t nc = (T + C - 1) / C;
  const int64_t pad = nc * C - T;
  // Padding tokens have k = v = 0 (they add nothing) and g = 0 (decay 1), so
  // the carried state after the padded end equals the state after token T-1.
  auto chunked = [&](const at::Tensor& t) {
    return at::constant_pad_nd(t, {0, 0, 0, pad}).reshape({B, H, nc, C, t.size(-1)});
  };
  const auto qc = chunked(q), kc = chunked(k), vc = chunked(v);
  // b_i relative to the chunk start, in float64: a strongly decaying chunk
  // reaches |b| in the thousands, where float32 would lose the small
  // differences b_i - b_j that matter. Only differences are cast back.
  const auto b = chunked(g).to(at::kDouble).cumsum(-2);
  const auto b_last = b.select(-2, C - 1);                         // (B, H, nc, Dg)
  const auto to_end = (b_last.unsqueeze(-2) - b).to(dtype).exp();  // e^{b_{C-1} - b_j} <= 1
  const auto from_start = b.to(dtype).exp();                       // e^{b_i} <= 1
  const auto chunk_decay = b_last.to(dtype).exp();

  const auto intra = intra_chunk(qc, kc, vc, b, axis, sub);

  // Each chunk's own contribution to the carried state, U_n (B, H, nc, Dk, Dv).
  const auto update = axis == DecayAxis::Key ? at::matmul((kc * to_end).transpose(-1, -2), vc)
                                             : at::matmul(kc.transpose(-1, -2), vc * to_end);
  const auto carry_decay = axis == DecayAxis::Key ? chunk_decay.unsqueeze(-1) : chunk_decay.unsqueeze(-2);
  std::vector<at::Tensor> chunk_start_states;
  chunk_start_states.reserve(nc);
  for (int64_t n = 0; n < nc; ++n) {
    chunk_start_states.push_back(state);
    state = carry_decay.select(2, n) * state + update.select(2, n);
  }
  const auto starts = at::stack(chunk_start_states, 2);  // (B, H, nc, Dk, Dv)
  const auto inter = axis == DecayAxis::Key ? at::matmul(qc * from_start, starts) : from_start * at::matmul(qc, starts);
  const auto output = (intra + inter).reshape({B, H, nc * C, Dv}).narrow(2, 0, T).to(q_in.scalar_type());
  return {output, state};
}

at::Tensor gated_linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                  const GlaOptions& opt) {
  gla_internal::check_sequence_inputs(q, k, v, g);
  check_chunking("gla", opt.chunk, opt.subchunk);
  auto heads_first = [](const at::Tensor& t) { return t.transpose(1, 2); };
  auto result = chunked_gated_recurrence(heads_first(q), heads_first(k), heads_first(v), heads_first(g), DecayAxis::Key,
                                         at::Tensor(), opt.chunk, opt.subchunk, resolve_scale(opt.scale, q.size(3)));
  return result.output.transpose(1, 2);
}

at::Tensor gated_linear_attention_with_state(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                             const at::Tensor& g, GlaState& state, const GlaOptions& opt) {
  gla_internal::check_sequence_inputs(q, k, v, g);
  check_chunking("gla", opt.chunk, opt.subchunk);
  gla_internal::check_state(state.state, q.size(0), q.size(2), q.size(3), v.size(3));
  auto heads_first = [](const at::Tensor& t) { return t.transpose(1, 2); };
  auto result = chunked_gated_recurrence(heads_first(q), heads_first(k), heads_first(v), heads_first(g), DecayAxis::Key,
                                         state.state, opt.chunk, opt.subchunk, resolve_scale(opt.scale, q.size(3)));
  state.state = result.final_state;
  state.position += q.size(1);
  return result.output.transpose(1, 2);
}

}  // namespace bla::ops
