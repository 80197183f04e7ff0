// BLA's chunked two-pass form, the training form (docs/bla.md "Training:
// chunked two-pass form"). Tensors arrive as (B, T, H, D); internally
// everything is per head, (B, H, ..., D). Batched einsums only: the slots are
// carried from chunk to chunk, never per token.
#include <torch/torch.h>

#include <limits>

#include "bla/ops/bla/bla.h"
#include "bla/ops/bla/internal.h"
#include "bla/ops/checks.h"

namespace bla::ops {

namespace {

// (B, T, H, D) -> (B, H, nc, C, D), zero-padding T up to nc * C. Padded
// queries are sliced off the output; padded keys and values never reach a
// real token (they come after all of them) nor the final state.
at::Tensor split_chunks(const at::Tensor& x, int64_t chunk) {
  const int64_t length = x.size(1), chunks = (length + chunk - 1) / chunk;
  at::Tensor per_head = x.permute({0, 2, 1, 3});
  if (chunks * chunk != length) per_head = at::constant_pad_nd(per_head, {0, 0, 0, chunks * chunk - length});
  return per_head.reshape({x.size(0), x.size(2), chunks, chunk, x.size(3)});
}

}  // namespace

namespace bla_internal {

at::Tensor chunked_forward(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                           const BlaOptions& opt, const at::Tensor& initial_keys, const at::Tensor& initial_values,
                           int64_t position, BlaState* final_state) {
  // Half and bfloat16 in float32 (checks.h): the powers A^tau and the softmax
  // over slots lose too much in 8 mantissa bits, and this form is the
  // yardstick for the CUDA kernel's bf16 path (docs/bla.md, "What the tests
  // must show", last item).
  const at::ScalarType type = compute_dtype(q_in.scalar_type());
  const at::Tensor q = q_in.to(type), k = k_in.to(type), v = v_in.to(type);
  const int64_t batch = q.size(0), length = q.size(1), heads = q.size(2);
  const int64_t dk = q.size(3), dv = v.size(3);
  const int64_t n = opt.slots, c = opt.chunk;
  const BlaOperators ops = bla_operators(opt.window, n, c, type, q.device());

  const at::Tensor keys_in =
      initial_keys.defined() ? initial_keys.to(type) : at::zeros({batch, heads, n, dk}, q.options());
  const at::Tensor values_in =
      initial_values.defined() ? initial_values.to(type) : at::zeros({batch, heads, n, dv}, v.options());
  if (length == 0) {
    if (final_state) *final_state = BlaState{keys_in, values_in, position};
    return at::empty({batch, 0, heads, dv}, v_in.options());
  }

  const int64_t chunks = (length + c - 1) / c;
  const int64_t padded = chunks * c;
  const double scale = resolve_scale(opt.scale, dk);
  const at::Tensor qc = split_chunks(q, c) * scale;
  const at::Tensor kc = split_chunks(k, c);
  const at::Tensor vc = split_chunks(v, c);

  const at::Tensor& causal_kernel = ops.causal_kernel;             // (C, C, N): h(i - s), s <= i
  const at::Tensor powers_ahead = ops.powers.slice(0, 1, c + 1);   // (C, N, N): A^(i+1)

  const at::Tensor slot_keys = bla_chunk_start_slots(keys_in, kc, ops);      // (B, H, nc, N, Dk)
  const at::Tensor slot_values = bla_chunk_start_slots(values_in, vc, ops);  // (B, H, nc, N, Dv)
  const at::Tensor last_keys = slot_keys.select(2, chunks - 1);
  const at::Tensor last_values = slot_values.select(2, chunks - 1);

  // Pass 1, scores: z_i = A^(i+1) (S_K q_i) + sum_{s<=i} h(i-s) <q_i, k_s>.
  const at::Tensor incoming = at::matmul(qc, slot_keys.transpose(-1, -2));  // (B, H, nc, C, N): S_K q_i
  const at::Tensor scores_inter = at::einsum("inm,bhcim->bhcin", {powers_ahead, incoming});
  const at::Tensor query_key = at::matmul(qc, kc.transpose(-1, -2));  // (B, H, nc, C, C)
  const at::Tensor scores_intra = at::einsum("bhcis,isn->bhcin", {query_key, causal_kernel});
  at::Tensor scores = scores_inter + scores_intra;
  if (mask_needed(position, opt)) {
    const at::Tensor mask = age_mask(position, padded, opt, q.device()).reshape({chunks, c, n});
    scores = scores.masked_fill(mask, -std::numeric_limits<double>::infinity());
  }
  const at::Tensor weights = at::softmax(scores, -1);  // p_i over the N slots

  // Pass 2, output: o_i = S_V^T (A^(i+1))^T p_i + sum_{s<=i} <p_i, h(i-s)> v_s.
  const at::Tensor weights_back = at::einsum("inm,bhcin->bhcim", {powers_ahead, weights});
  const at::Tensor out_inter = at::matmul(weights_back, slot_values);
  const at::Tensor weights_token = at::einsum("bhcin,isn->bhcis", {weights, causal_kernel});
  const at::Tensor out_intra = at::matmul(weights_token, vc);
  const at::Tensor out = (out_inter + out_intra).reshape({batch, heads, padded, dv});

  if (final_state) {
    // The state after the last real token: L <= C tokens of the last chunk
    // past its incoming slots, S = A^L S_in + sum_{s<L} h(L-1-s) x_s^T.
    const int64_t last = length - (chunks - 1) * c;
    const at::Tensor power_last = ops.powers.select(0, last);
    const at::Tensor kernel_last = ops.kernel.slice(0, 0, last).flip(0);
    const auto advance = [&](const at::Tensor& slots_in, const at::Tensor& xc) {
      const at::Tensor tokens = xc.select(2, chunks - 1).slice(2, 0, last);  // (B, H, L, D)
      return at::matmul(power_last, slots_in) + at::einsum("sn,bhsd->bhnd", {kernel_last, tokens});
    };
    final_state->keys = advance(last_keys, kc);
    final_state->values = advance(last_values, vc);
    final_state->position = position + length;
  }
  return out.slice(2, 0, length).permute({0, 2, 1, 3}).contiguous().to(v_in.scalar_type());
}

}  // namespace bla_internal

at::Tensor bla_chunk_start_slots(const at::Tensor& initial, const at::Tensor& chunks, const BlaOperators& ops) {
  // S_in[c+1] = A^C S_in[c] + sum_s h(C-1-s) x_s^T. The local sums of every
  // full chunk are one einsum; the scan over chunks is a Hillis-Steele scan in
  // ceil(log2(nc)) rounds (each one batched matmul over all chunks) instead of
  // nc - 1 small serial ones: on a GPU the serial loop was bound by kernel
  // launches, forward and backward.
  const int64_t count = chunks.size(2);
  if (count == 1) return initial.unsqueeze(2);
  const at::Tensor power_chunk = ops.powers.select(0, ops.chunk);  // A^C
  const at::Tensor carry_kernel = ops.kernel.flip(0);              // (C, N): h(C-1-s)
  // y[0] = S_0, y[c] = local sum of chunk c-1; afterwards y[c] = S_in[c].
  at::Tensor y = at::cat(
      {initial.unsqueeze(2), at::einsum("sn,bhcsd->bhcnd", {carry_kernel, chunks.slice(2, 0, count - 1)})}, 2);
  at::Tensor jump = power_chunk;  // (A^C)^(2^round)
  for (int64_t stride = 1; stride < count; stride *= 2) {
    const at::Tensor moved = at::matmul(jump, y.slice(2, 0, count - stride));
    y = at::cat({y.slice(2, 0, stride), y.slice(2, stride, count) + moved}, 2);
    if (stride * 2 < count) jump = at::matmul(jump, jump);
  }
  return y;
}

at::Tensor blurry_window_attention_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const BlaOptions& opt) {
  opt.validate();
  bla_internal::check_sequence_inputs("blurry_window_attention_chunked", q, k, v);
  return bla_internal::chunked_forward(q, k, v, opt, {}, {}, 0, nullptr);
}

at::Tensor blurry_window_attention_with_state(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const BlaOptions& opt, BlaState* state) {
  // Without a state, the routed op (dispatch.cpp): a kernel on CUDA where one applies.
  if (state == nullptr) return blurry_window_attention(q, k, v, opt);
  opt.validate();
  bla_internal::check_sequence_inputs("blurry_window_attention", q, k, v);
  if (!state->keys.defined() && !state->values.defined()) {
    if (state->position != 0) bla_internal::fail_in("blurry_window_attention", "an empty state must have position 0");
    return bla_internal::chunked_forward(q, k, v, opt, {}, {}, 0, state);
  }
  bla_internal::check_state("blurry_window_attention", *state, q, v, opt);
  const BlaState incoming = *state;
  return bla_internal::chunked_forward(q, k, v, opt, incoming.keys, incoming.values, incoming.position, state);
}

}  // namespace bla::ops
