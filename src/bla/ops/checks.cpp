#include "bla/ops/checks.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace bla::ops {

std::string shape_of(at::IntArrayRef sizes) {
  std::ostringstream out;
  out << sizes;
  return out.str();
}

std::string shape_of(const at::Tensor& t) {
  return t.defined() ? shape_of(t.sizes()) : std::string("an undefined tensor");
}

void fail(const std::string& message) { throw std::invalid_argument("bla: " + message); }

void require_dim(const std::string& op, const std::string& name, const at::Tensor& t, int64_t dims,
                 const std::string& layout) {
  if (!t.defined() || t.dim() != dims) fail(op + " " + name + " must be " + layout + "; got " + shape_of(t));
}

void require_shape(const std::string& op, const std::string& name, const at::Tensor& t, at::IntArrayRef expected,
                   const std::string& layout) {
  if (!t.defined() || t.sizes() != expected)
    fail(op + " " + name + " must be " + layout + " = " + shape_of(expected) + "; got " + shape_of(t));
}

at::ScalarType compute_dtype(at::ScalarType dtype) {
  return (dtype == at::kHalf || dtype == at::kBFloat16) ? at::kFloat : dtype;
}

double resolve_scale(double scale, int64_t head_dim) {
  return scale > 0.0 ? scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
}

}  // namespace bla::ops
