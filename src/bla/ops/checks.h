// What every op checks and decides the same way: the text of a shape in an
// error message, the error itself, a tensor's required rank or shape, the
// dtype an op computes in, and the default attention scale. Each op's own
// checks (ops/<op>/internal.h), which name the op and its arguments, are
// built from these.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <string>

namespace bla::ops {

// A shape as text, "[2, 3]"; for a tensor "an undefined tensor" when it is.
std::string shape_of(at::IntArrayRef sizes);
std::string shape_of(const at::Tensor& t);

// Throws std::invalid_argument("bla: " + message): the one form of an op's
// input error.
[[noreturn]] void fail(const std::string& message);

// Throw unless t is defined with `dims` dimensions, or with exactly the shape
// `expected`. The message reads "bla: <op> <name> must be <layout>; got ..."
// (with " = <expected>" after the layout for require_shape).
void require_dim(const std::string& op, const std::string& name, const at::Tensor& t, int64_t dims,
                 const std::string& layout);
void require_shape(const std::string& op, const std::string& name, const at::Tensor& t, at::IntArrayRef expected,
                   const std::string& layout);

// The dtype an op computes in: half and bfloat16 inputs in float32 (8 or 11
// mantissa bits lose too much in decays, cumulative sums and softmaxes, and
// the LibTorch forms are the CUDA kernels' yardstick), float32 and float64 as
// given. Outputs return in the input dtype; decoding states stay in this one.
at::ScalarType compute_dtype(at::ScalarType dtype);

// The attention scale: `scale` where it is > 0, else 1/sqrt(head_dim).
double resolve_scale(double scale, int64_t head_dim);

}  // namespace bla::ops
