// Gated linear attention (GLA, docs/mixers.md "GLA") as functional ops
// on tensors shaped (batch, seq, heads, dim), in three forms, one file each
// in this folder:
//   - reference.cpp, gated_linear_attention_reference: the recurrence token
//     by token;
//   - chunked.cpp, gated_linear_attention: the chunked form used for training;
//   - dispatch.cpp, chunked_gated_recurrence: the chunked form's recurrence on
//     the CUDA kernels or in LibTorch ops, and backward.cpp the kernels'
//     gradients from forward passes;
//   - decode.cpp, gla_decode_step: one token against a bounded state (d_k x
//     d_v per head).
// On CUDA the chunked form's recurrence runs CUDA kernels from a zero state
// (dispatch.cpp; the LibTorch chunked form everywhere else).
// Per head and token t, with g_t <= 0 the log-decay per key channel (assumed,
// not checked):
//   S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,   o_t = scale * S_t^T q_t.
//
// The chunked machinery (chunked_gated_recurrence) also serves GSA, whose two
// passes are GLA-like recurrences with the decay on the key or the value axis;
// so do the chunk-size helpers gla_subchunk and gla_chunk_problem, which the
// GLA and GSA layers use.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstdint>
#include <string>

namespace bla::ops {

struct GlaOptions {
  int64_t chunk = 64;     // tokens per chunk of the chunked form
  double scale = 0.0;     // <= 0: 1/sqrt(key_dim)
  int64_t subchunk = 16;  // pairwise-decay block inside a chunk (see chunked.cpp); must divide chunk
};

// What decoding keeps per sequence: S (B, H, Dk, Dv) and the tokens seen.
// For half/bfloat16 inputs the state is kept in float32 (see chunked.cpp).
struct GlaState {
  at::Tensor state;
  int64_t position = 0;
};

// Chunked form. q, k, g: (B, T, H, Dk); v: (B, T, H, Dv) -> (B, T, H, Dv).
at::Tensor gated_linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                  const GlaOptions& opt = {});
// Chunked form starting from `state` (prefill); replaces state.state with the
// state after the last token (a new tensor, so autograd flows through it) and
// advances state.position by T.
at::Tensor gated_linear_attention_with_state(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                             const at::Tensor& g, GlaState& state, const GlaOptions& opt = {});
// Reference: the recurrence above, one token at a time.
at::Tensor gated_linear_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& g, const GlaOptions& opt = {});

// A zero state for `batch` sequences.
GlaState gla_initial_state(int64_t batch, int64_t heads, int64_t key_dim, int64_t value_dim,
                           const at::TensorOptions& options);
// One token: q, k, g (B, H, Dk); v (B, H, Dv) -> o (B, H, Dv); updates state.
at::Tensor gla_decode_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                           GlaState& state, const GlaOptions& opt = {});

// ---------------------------------------------------------------------------
// The shared chunked machinery (chunked.cpp), used by GLA and GSA. No
// validation of its own: the public ops validate and name themselves in errors.

// Which axis of the state S (Dk x Dv) the per-token decay multiplies:
//   Key:   S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,   g_t in R^Dk  (GLA; GSA pass 2)
//   Value: S_t = S_{t-1} diag(exp(g_t)) + k_t v_t^T,   g_t in R^Dv  (GSA pass 1)
// and o_t = scale * S_t^T q_t in both.
enum class DecayAxis { Key, Value };

struct GatedRecurrenceResult {
  at::Tensor output;       // (B, H, T, Dv), dtype of q
  at::Tensor final_state;  // (B, H, Dk, Dv), float32 for half/bfloat16 inputs
};

// Heads-first layout: q, k (B, H, T, Dk); v (B, H, T, Dv); g (B, H, T, Dk or
// Dv by `axis`); initial_state (B, H, Dk, Dv) or undefined for zeros.
// chunk and subchunk as accepted by check_chunking.
GatedRecurrenceResult chunked_gated_recurrence(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               const at::Tensor& g, DecayAxis axis, const at::Tensor& initial_state,
                                               int64_t chunk, int64_t subchunk, double scale);

// Throws std::invalid_argument unless chunk >= 1, subchunk >= 1 and
// min(subchunk, chunk) divides chunk. `op` names the caller ("gla", "gsa").
void check_chunking(const char* op, int64_t chunk, int64_t subchunk);

// The sub-chunk the GLA and GSA layers use for `chunk`: 16, or the chunk
// itself when shorter; and, for a config error, what is wrong with `chunk`
// under it ("" when nothing: chunk <= 16 or a multiple of 16).
inline int64_t gla_subchunk(int64_t chunk) { return chunk < 16 ? chunk : 16; }
std::string gla_chunk_problem(int64_t chunk);

}  // namespace bla::ops
