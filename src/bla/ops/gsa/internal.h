// What the forms of GSA (reference.cpp, chunked.cpp, decode.cpp) share:
// their input checks. Not part of the op's interface: callers include gsa.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "bla/ops/gsa/gsa.h"

namespace bla::ops::gsa_internal {

// The softmax temperature must be > 0.
void check_scale(const GsaOptions& opt);

// q, k (B, T, H, Dk); v (B, T, H, Dv); f (B, T, H, m), m >= 1; one dtype.
void check_sequence_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& f);

// The slots' keys (batch, heads, slots, key_dim) and values (batch, heads, slots, value_dim).
void check_state(const GsaState& state, int64_t batch, int64_t heads, int64_t slots, int64_t key_dim,
                 int64_t value_dim);

}  // namespace bla::ops::gsa_internal
