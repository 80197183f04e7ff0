// What the forms of the mamba2 op (reference.cpp, chunked.cpp, decode.cpp)
// share: their input checks and the group expansion of B and C. Not part of
// the op's interface: callers include mamba2.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "bla/ops/mamba2/mamba2.h"

namespace bla::ops::mamba2_internal {

struct SsdDims {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0, groups = 0, d_state = 0;
};

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

}  // namespace bla::ops::mamba2_internal
