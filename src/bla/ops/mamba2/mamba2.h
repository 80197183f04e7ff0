// The selective state space recurrence of the Mamba2-like mixer (`mamba2`;
// the functions keep the paper's name for it, SSD), as functional ops on
// tensors shaped (batch, seq, heads, head_dim). Three forms of the same map
// (docs/mixers.md, "Mamba2-like (SSD)"), one file each in this folder:
//   h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t^T   (d_state x head_dim per head)
//   y_t = C_t^T h_t + D x_t
// - chunked.cpp, selective_state_space: the chunked training form;
// - reference.cpp, selective_state_space_reference: a plain token loop, the
//   definition;
// - decode.cpp, ssd_decode_step: one token against a bounded state;
// and dispatch.cpp, which runs selective_state_space on the CUDA kernels
// (bla_kernels/ssd.h) where they take the inputs and no gradient is needed
// (with SsdOptions::kernel_backward, also with gradients, by backward.h).
// Projections, convolution and gating belong to the layer, not here.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstdint>

namespace bla::ops {

struct SsdOptions {
  int64_t chunk = 64;  // tokens per chunk of the chunked form; any T works (the last chunk is padded)
  // On CUDA, where gradients are needed: the kernels' forward with their
  // three-pass backward (backward.h) instead of the LibTorch form. Off by
  // default: that backward is slower than the LibTorch form's at every shape
  // measured (docs/performance.md); the kernel tests and bla-bench use it.
  bool kernel_backward = false;
};

// What decoding keeps per sequence: h of every head, and the tokens seen.
struct SsdState {
  at::Tensor state;  // (B, H, N, P)
  int64_t position = 0;
};

// Shapes: x (B, T, H, P); dt (B, T, H), already softplus'ed (> 0); A (H),
// negative; Bm, Cm (B, T, G, N) with G groups, head h reading group
// h / (H / G); D (H) or undefined for no skip. Returns y (B, T, H, P).
//
// Chunked form: within a chunk the scalar decay makes the map a masked
// attention-like product with weights exp(Acum_i - Acum_j), Acum the cumsum
// of dt*A from the chunk start (<= 0 differences only, never exp of a positive
// number); then the state at every chunk end, a scan over chunks, and the
// inter-chunk term exp(Acum_i) C_i . state. The scan is one product with a
// (T/chunk + 1)^2 decay matrix (no loop over chunks). Memory per head:
// O(T * chunk + (T/chunk)^2 + (T/chunk) * N * P). float32 error grows with
// chunk * |dt A| (the cumsum differences): measured 7e-6 relative at chunk 64,
// A = -16, dt up to 1, T = 4096.
at::Tensor selective_state_space(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& Bm,
                                 const at::Tensor& Cm, const at::Tensor& D, const SsdOptions& opt = {});

// The chunked form continuing from `state` (prefill, or any later stretch of
// tokens): starts from state.state, leaves the state after the last token
// there and advances state.position by T.
at::Tensor selective_state_space_with_state(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                            const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& D,
                                            const SsdOptions& opt, SsdState& state);

// Reference: the recurrence one token at a time from h = 0. Same arguments.
at::Tensor selective_state_space_reference(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                           const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& D);

// h = 0 for `batch` sequences: state (batch, heads, d_state, head_dim).
SsdState ssd_initial_state(int64_t batch, int64_t heads, int64_t d_state, int64_t head_dim,
                           const at::TensorOptions& options);

// One token: x (B, H, P), dt (B, H), A (H), Bm, Cm (B, G, N), D (H) or
// undefined. Returns y (B, H, P); replaces state.state (no in-place write, so
// it is safe under autograd) and advances state.position by one.
at::Tensor ssd_decode_step(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& Bm,
                           const at::Tensor& Cm, const at::Tensor& D, SsdState& state);

}  // namespace bla::ops
