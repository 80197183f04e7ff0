// The core of GatedFWA (the `gatedfwa` mixer; docs/mixers.md, "GatedFWA"):
// sliding-window softmax attention whose logits carry the running sum G of a
// per-token, per-head log gate g <= 0,
//   logits_{t,s} = scale q_t.k_s + (G_t - G_s)   for t-W < s <= t,
// so older keys inside the window are decayed. Tensors are (batch, seq,
// heads, head_dim). The functions keep the name gated window. The forms, one
// file each in this folder:
//   - dispatch.cpp, gated_window_attention: the SWA CUDA kernel with G as its
//     per-token bias on CUDA tensors, the blocked form elsewhere;
//   - chunked.cpp: the blocked form, queries in blocks;
//   - reference.cpp, gated_window_attention_reference: one query at a time;
//   - decode.cpp, gated_window_prefill and gated_window_decode_step: ring
//     buffers of the last W tokens.
// Projections and the gate's own projection belong to the layer.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstdint>

namespace bla::ops {

struct GatedWindowOptions {
  int64_t window = 0;  // W: keys t-W < s <= t; must be >= 1
  double scale = 0.0;  // <= 0: 1/sqrt(d_k)
  int64_t block = 64;  // queries per block of the fast form (memory O(T * (W + block)) per head)
};

// Decoding state. Slot t % W of each ring holds token t. Instead of G_s the
// state keeps, per slot, G_now - G_s (the log decay the key has collected
// since it was written): it stays bounded by W gate values however long the
// decode runs, where G itself would grow without bound and lose precision.
// Same size: W gate values per head.
struct GatedWindowState {
  at::Tensor keys;       // (B, W, H, Dk)
  at::Tensor values;     // (B, W, H, Dv)
  at::Tensor gate_sums;  // (B, W, H): G_now - G_s, <= 0; float32 at least
  int64_t position = 0;  // tokens seen
};

// q, k: (B, T, H, Dk); v: (B, T, H, Dv); log_gate g: (B, T, H), <= 0.
// Returns (B, T, H, Dv). On CUDA the SWA kernel (Dk = Dv in {64, 128}; G
// summed in float64, passed as float32). Elsewhere queries in blocks of
// opt.block, each block a masked batched matmul against its W + block - 1
// keys, with G_t - G_s taken from a cumsum of g local to that key window
// (bounded, so float32 keeps its precision on long sequences).
at::Tensor gated_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& log_gate, const GatedWindowOptions& opt);

// Reference: one query at a time, G = cumsum(g) and an explicit window softmax.
at::Tensor gated_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& log_gate, const GatedWindowOptions& opt);

// An empty state for `batch` sequences (window from opt).
GatedWindowState gated_window_initial_state(int64_t batch, int64_t heads, int64_t head_dim_k, int64_t head_dim_v,
                                            const GatedWindowOptions& opt, const at::TensorOptions& options);

// Prefill of a fresh state (position 0): the fast form over the prompt, then
// the last min(T, W) tokens written into the rings. Returns (B, T, H, Dv).
at::Tensor gated_window_prefill(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& log_gate, const GatedWindowOptions& opt, GatedWindowState& state);

// One token: q, k (B, H, Dk), v (B, H, Dv), log_gate (B, H). Returns
// (B, H, Dv). Writes the rings in place: meant for inference (NoGradGuard);
// train through gated_window_attention.
at::Tensor gated_window_decode_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& log_gate, const GatedWindowOptions& opt,
                                    GatedWindowState& state);

}  // namespace bla::ops
