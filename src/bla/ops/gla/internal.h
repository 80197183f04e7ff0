// What the forms of GLA (reference.cpp, chunked.cpp, decode.cpp,
// dispatch.cpp) share: their input checks, and the chunked recurrence in
// LibTorch ops that dispatch.cpp routes to where the kernel does not run.
// Not part of the op's interface: callers include gla.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "bla/ops/gla/gla.h"

namespace bla::ops::gla_internal {

// Shapes of a full-sequence call: q, k, g (B, T, H, Dk), v (B, T, H, Dv), one dtype.
void check_sequence_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g);

// The decoding state S is (batch, heads, key_dim, value_dim).
void check_state(const at::Tensor& state, int64_t batch, int64_t heads, int64_t key_dim, int64_t value_dim);

// chunked_gated_recurrence (gla.h) in LibTorch ops, on every device.
GatedRecurrenceResult chunked_gated_recurrence_libtorch(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                        const at::Tensor& g, DecayAxis axis,
                                                        const at::Tensor& initial_state, int64_t chunk,
                                                        int64_t subchunk, double scale);

}  // namespace bla::ops::gla_internal
