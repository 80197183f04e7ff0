// Blurry Window Attention (BLA) as a functional op, in the three forms of
// docs/bla.md, one file each in this folder:
//   - reference.cpp, blurry_window_attention_reference: the token-by-token
//     slot recurrence (forget, shift, insert; then masked softmax over the
//     slots). Slow, obviously correct, the yardstick for the others.
//   - chunked.cpp, blurry_window_attention_chunked (+ _with_state): the
//     chunked two-pass form used for training ("Training: chunked two-pass
//     form"). Batched einsums only, autograd-differentiable, never
//     materialises per-token slot states.
//   - decode.cpp, bla_decode_step: one token at a time over a fixed-size
//     BlaState ("Decoding"); the state never grows.
//   - dispatch.cpp, blurry_window_attention: the fused CUDA kernel
//     (kernels/bla_*.cu, or the SWA kernel when N == W) where it applies,
//     else the chunked form.
// operators.h holds the slot memory's fixed operators, modal.h their modal
// basis (for the fused kernel); internal.h what the forms share.
// Tensors are (batch, seq, heads, head_dim) like the other attention ops;
// the decode step takes one token, (batch, heads, head_dim).
// Dtypes: float64 and float32 are computed as given. Half and bfloat16 inputs
// are computed in float32 (operators, slots, softmax) and the output is cast
// back to the input dtype; states returned by the chunked form are then
// float32. Under autocast, autocast's own casting rules apply to each op.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstdint>
#include <string>

#include "bla/ops/bla/operators.h"

namespace bla::ops {

struct BlaOptions {
  int64_t window = 64;  // W: tokens the slots cover
  int64_t slots = 16;   // N: slots per head, 1 <= N <= W (N == W is SWA(W))
  int64_t chunk = 64;   // C: tokens per chunk in the chunked form
  double scale = 0.0;   // <= 0 means 1/sqrt(d_k)

  // Throws std::invalid_argument naming the bad option and the fix.
  void validate() const;
};

// The slots before each chunk (the chunked form's carry): initial (B, H, N, D)
// and chunks (B, H, nc, C, D) of keys or values, C = ops.chunk ->
// (B, H, nc, N, D), entry c the slots after the first c chunks. Differentiable.
at::Tensor bla_chunk_start_slots(const at::Tensor& initial, const at::Tensor& chunks, const BlaOperators& ops);

// Chunked two-pass form. q, k: (B, T, H, Dk); v: (B, T, H, Dv) -> (B, T, H, Dv).
// Starts from empty slots at position 0. On CUDA it runs the fused kernel
// (kernels/bla_*.cu; the SWA kernel when N == W) where the shape is
// supported and BLA_KERNELS is not 0, and says once in the log when it cannot.
at::Tensor blurry_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const BlaOptions& opt);

// The LibTorch chunked form only, on any device: never a kernel (the
// kernels' yardstick in tests and bla-bench).
at::Tensor blurry_window_attention_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const BlaOptions& opt);

// Whether blurry_window_attention runs a CUDA kernel for these inputs; if
// not, *why (if given) says why (as the log would).
bool bla_kernel_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlaOptions& opt,
                          std::string* why = nullptr);

// Token-by-token recurrence S_t = A S_{t-1} + b x_t^T (applied as its three
// steps), mask, softmax. Same shapes as blurry_window_attention.
at::Tensor blurry_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                             const BlaOptions& opt);

// The recurrent state of one BLA op: slots per head and the number of tokens
// seen so far (which decides the age mask). Its size is fixed by (B, H, N, D).
struct BlaState {
  at::Tensor keys;       // (B, H, N, Dk)
  at::Tensor values;     // (B, H, N, Dv)
  int64_t position = 0;  // tokens consumed; the next token's global index t
};

// Empty slots at position 0.
BlaState bla_initial_state(int64_t batch, int64_t heads, int64_t dk, int64_t dv, const BlaOptions& opt,
                           const at::TensorOptions& options);

// One decode step: q, k, v (B, H, D) -> (B, H, Dv). Applies S <- A S + b x^T
// to the state, attends over its slots, and advances state.position by one.
// The state keeps the dtype it was made with (use float32 for bf16 models:
// a bf16 state rounds every step).
at::Tensor bla_decode_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, BlaState& state,
                           const BlaOptions& opt);

// Chunked form continuing from a state (prefill, then decode).
// If `state` is null, starts from empty slots at position 0 and returns the
// outputs only. Otherwise *state is the incoming state (an undefined
// state->keys means empty slots; state->position offsets the age mask) and on
// return holds the state after the last token of q, k, v, exactly as
// bla_decode_step would have left it; position advances by T. The returned
// state tensors stay in the autograd graph (detach them to truncate it).
at::Tensor blurry_window_attention_with_state(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const BlaOptions& opt, BlaState* state);

}  // namespace bla::ops
