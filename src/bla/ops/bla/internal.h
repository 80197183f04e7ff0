// What the forms of BLA (reference.cpp, chunked.cpp, decode.cpp,
// dispatch.cpp) share: their input checks, the age mask, and the chunked
// form itself, which dispatch.cpp falls back to. Not part of the op's
// interface: callers include bla.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "bla/ops/bla/bla.h"

namespace bla::ops::bla_internal {

// Throws std::invalid_argument("bla: <where>: <message>").
[[noreturn]] void fail_in(const std::string& where, const std::string& message);

// q, k: (B, T, H, Dk); v: (B, T, H, Dv), one floating dtype and device.
void check_sequence_inputs(const std::string& where, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// The state matches q (B, T, H, Dk) or (B, H, Dk), v and the options.
void check_state(const std::string& where, const BlaState& state, const at::Tensor& q, const at::Tensor& v,
                 const BlaOptions& opt);

// True where slot j is older than the sequence: a_j = j W / N > t, for the
// positions t = first_position .. first_position + length - 1. (T, N) bool.
at::Tensor age_mask(int64_t first_position, int64_t length, const BlaOptions& opt, at::Device device);

// Whether any slot is still masked at (and after) `position`.
bool mask_needed(int64_t position, const BlaOptions& opt);

// The chunked form (chunked.cpp) on checked inputs, with an optional incoming
// state (empty slots when the tensors are undefined) and the outgoing state
// when `final_state` is set.
at::Tensor chunked_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlaOptions& opt,
                           const at::Tensor& initial_keys, const at::Tensor& initial_values, int64_t position,
                           BlaState* final_state);

}  // namespace bla::ops::bla_internal
