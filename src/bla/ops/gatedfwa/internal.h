// What the forms of the gatedfwa op (reference.cpp, chunked.cpp, decode.cpp)
// share: their checks of options and inputs. Not part of the op's interface:
// callers include gatedfwa.h.
#pragma once

#include <ATen/core/Tensor.h>

#include "bla/ops/gatedfwa/gatedfwa.h"

namespace bla::ops::gatedfwa_internal {

// window >= 1 and block >= 1.
void check_options(const GatedWindowOptions& opt);

// q, k (B, T, H, Dk), v (B, T, H, Dv), log_gate (B, T, H).
void check_sequence_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_gate);

}  // namespace bla::ops::gatedfwa_internal
