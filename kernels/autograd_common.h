// Argument checks the LibTorch sides of the kernels share (swa_autograd.cpp,
// bla_autograd.cpp). Every message starts with the kernel's `who` prefix,
// e.g. "bla: swa kernel: ".
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <cuda_runtime_api.h>

#include <sstream>
#include <stdexcept>
#include <string>

namespace bla::kernels::detail {

inline std::string sizes_text(at::IntArrayRef sizes) {
  std::ostringstream out;
  out << sizes;
  return out.str();
}
inline std::string shape_text(const at::Tensor& t) { return sizes_text(t.sizes()); }

inline void check_cuda(const std::string& who, cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(who + what + " failed: " + cudaGetErrorString(err));
}

// A caller-provided output buffer: defined, contiguous, of this shape and
// dtype, on like's device.
inline void check_buffer(const std::string& who, const at::Tensor& t, const char* name, at::IntArrayRef sizes,
                         at::ScalarType dtype, const at::Tensor& like) {
  if (!t.defined() || t.sizes() != sizes || t.scalar_type() != dtype || !t.is_contiguous() ||
      t.device() != like.device())
    throw std::invalid_argument(who + name + " must be a contiguous " + c10::toString(dtype) +
                                " tensor of shape " + sizes_text(sizes) + " on " + like.device().str());
}

}  // namespace bla::kernels::detail
