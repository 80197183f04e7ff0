// Gated slot attention (GSA, docs/mixers.md "GSA") as functional ops on
// tensors shaped (batch, seq, heads, dim), in three forms, one file each in
// this folder:
//   - reference.cpp, gated_slot_attention_reference: the recurrence token by
//     token;
//   - chunked.cpp, gated_slot_attention: the chunked form (two GLA-like
//     passes through GLA's chunked machinery, ops/gla/gla.h);
//   - decode.cpp, gsa_decode_step: one token against m slots of keys and
//     values.
// No CUDA kernel: the chunked form runs on every device.
// Per head and token t, with f_t <= 0 the log forget gate of the m slots,
// alpha_t = exp(f_t) and write strength s_t = 1 - alpha_t:
//   K~_t = diag(alpha_t) K~_{t-1} + s_t k_t^T       (m x Dk)
//   V~_t = diag(alpha_t) V~_{t-1} + s_t v_t^T       (m x Dv)
//   o_t  = V~_t^T softmax(scale * K~_t q_t).
// The feature map on q and k belongs to the layer, not to these ops.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstdint>

namespace bla::ops {

struct GsaOptions {
  int64_t chunk = 64;     // tokens per chunk of the chunked form
  double scale = 1.0;     // softmax temperature on K~ q; must be > 0
  int64_t subchunk = 16;  // pairwise-decay block inside a chunk (ops/gla/chunked.cpp); must divide chunk
};

// What decoding keeps per sequence: the slots' keys (B, H, m, Dk) and values
// (B, H, m, Dv), and the tokens seen. float32 for half/bfloat16 inputs.
struct GsaState {
  at::Tensor keys;
  at::Tensor values;
  int64_t position = 0;
};

// Chunked form. q, k: (B, T, H, Dk); v: (B, T, H, Dv); f: (B, T, H, m)
// -> (B, T, H, Dv).
at::Tensor gated_slot_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& f,
                                const GsaOptions& opt = {});
// Chunked form starting from `state` (prefill); replaces the state's tensors
// with those after the last token and advances state.position by T.
at::Tensor gated_slot_attention_with_state(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& f, GsaState& state, const GsaOptions& opt = {});
// Reference: the recurrence above, one token at a time.
at::Tensor gated_slot_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& f, const GsaOptions& opt = {});

// Empty slots for `batch` sequences.
GsaState gsa_initial_state(int64_t batch, int64_t heads, int64_t slots, int64_t key_dim, int64_t value_dim,
                           const at::TensorOptions& options);
// One token: q, k (B, H, Dk); v (B, H, Dv); f (B, H, m) -> o (B, H, Dv).
at::Tensor gsa_decode_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& f,
                           GsaState& state, const GsaOptions& opt = {});

}  // namespace bla::ops
