// What the forms of the mamba2 op (reference.cpp, chunked.cpp, decode.cpp,
// dispatch.cpp, backward.cpp) share: their input checks, the group expansion
// of B and C, and the chunked form in LibTorch ops. Not part of the op's
// interface: callers include mamba2.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>

#include "bla/ops/mamba2/mamba2.h"

namespace bla::ops::mamba2_internal {

struct SsdDims {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0, groups = 0, d_state = 0;
};

// opt.chunk >= 1.
void check_chunk(const SsdOptions& opt);

// heads must be a multiple of groups >= 1.
void check_groups(int64_t heads, int64_t groups);

// Inputs of the sequence forms: x (B, T, H, P), dt (B, T, H), A (H), Bm, Cm
// (B, T, G, N), D (H) or none. Returns their sizes.
SsdDims check_sequence_inputs(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& Bm,
                              const at::Tensor& Cm, const at::Tensor& D);

// state.state is (batch, heads, d_state, head_dim).
void check_state(const SsdState& state, const SsdDims& d);

// (..., G, N) -> (..., H, N): head h reads group h / (H / G).
at::Tensor expand_groups(const at::Tensor& t, int64_t heads);

// The recurrence as the chunked form and the kernels take it: per token and
// head a log decay l = dt A and a key scale s = dt, (B, T, H) in at least
// float32.
struct SsdDecay {
  at::Tensor log_decay, key_scale;
};
SsdDecay ssd_decay(const at::Tensor& dt, const at::Tensor& A);

// The chunked form of h_t = exp(l_t) h_{t-1} + s_t B_t x_t^T, y_t = C_t^T h_t
// (no D) in LibTorch ops: x (B, T, H, P); log_decay, key_scale (B, T, H),
// key_scale undefined for 1; Bm, Cm (B, T, G, N); initial (B, H, N, P) or
// undefined for h = 0. Returns y (B, T, H, P) and the state after the last
// token (B, H, N, P).
std::pair<at::Tensor, at::Tensor> ssd_chunked(const at::Tensor& x, const at::Tensor& log_decay,
                                              const at::Tensor& key_scale, const at::Tensor& Bm, const at::Tensor& Cm,
                                              int64_t chunk, const at::Tensor& initial);

// y + D x (D (H) or undefined for none).
at::Tensor add_skip(const at::Tensor& y, const at::Tensor& x, const at::Tensor& D);

// selective_state_space in the chunked form from h = 0 (inputs checked).
at::Tensor selective_state_space_libtorch(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                          const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& D,
                                          int64_t chunk);

}  // namespace bla::ops::mamba2_internal
