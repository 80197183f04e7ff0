// Argument checks the LibTorch sides of the kernels share (swa_autograd.cpp,
// bla_autograd.cpp). Every message starts with the kernel's `who` prefix,
// e.g. "bla: swa kernel: ".
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <cuda_runtime_api.h>

#ifndef BLA_CPU_EMULATION
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace bla::kernels::detail {

// The device the kernels run on: CUDA, or under the CPU emulation of the
// development harnesses (BLA_CPU_EMULATION, kernels/dev/cpu_emulation.h)
// the CPU, whose tensors the emulated kernels read and write in place.
#ifndef BLA_CPU_EMULATION
inline constexpr const char* kKernelDeviceName = "CUDA";
inline bool on_kernel_device(const at::Tensor& t) { return t.is_cuda(); }
using KernelDeviceGuard = c10::cuda::CUDAGuard;
inline cudaStream_t kernel_stream(const at::Tensor& t) {
  return at::cuda::getCurrentCUDAStream(t.device().index()).stream();
}
#else
inline constexpr const char* kKernelDeviceName = "CPU (emulated kernels)";
inline bool on_kernel_device(const at::Tensor& t) { return t.is_cpu(); }
struct KernelDeviceGuard {
  explicit KernelDeviceGuard(c10::Device) {}
};
inline cudaStream_t kernel_stream(const at::Tensor&) { return nullptr; }
#endif

inline std::string sizes_text(at::IntArrayRef sizes) {
  std::ostringstream out;
  out << sizes;
  return out.str();
}
inline std::string shape_text(const at::Tensor& t) { return sizes_text(t.sizes()); }

// What a *_supported check returns where the kernel does not apply: false,
// with the reason in *why where the caller asked for one.
inline bool unsupported(std::string* why, const std::string& reason) {
  if (why != nullptr) *why = reason;
  return false;
}

inline void check_cuda(const std::string& who, cudaError_t err, const char* what) {
#ifndef BLA_CPU_EMULATION
  if (err != cudaSuccess) throw std::runtime_error(who + what + " failed: " + cudaGetErrorString(err));
#else
  if (err != cudaSuccess) throw std::runtime_error(who + what + " failed: error " + std::to_string(err));
#endif
}

// Whether t's data starts on a 32-byte boundary, as the tensor cores'
// fragment loads and stores need (fresh allocations do; views may not).
inline bool aligned_32(const at::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 32 == 0; }

// A caller-provided output buffer: defined, contiguous, 32-byte aligned, of
// this shape and dtype, on like's device.
inline void check_buffer(const std::string& who, const at::Tensor& t, const char* name, at::IntArrayRef sizes,
                         at::ScalarType dtype, const at::Tensor& like) {
  if (!t.defined() || t.sizes() != sizes || t.scalar_type() != dtype || !t.is_contiguous() ||
      t.device() != like.device() || !aligned_32(t))
    throw std::invalid_argument(who + name + " must be a contiguous, 32-byte aligned (freshly allocated) " +
                                c10::toString(dtype) + " tensor of shape " + sizes_text(sizes) + " on " +
                                like.device().str());
}

// The checks both kernels' *_supported share: q, k, v defined CUDA tensors
// on one device, all bf16 or all float32, one shape (B, T, H, D) with D in
// {64, 128} and 32-bit token indices. Returns the first problem, or "".
inline std::string qkv_problem(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (!q.defined() || !k.defined() || !v.defined()) return "q, k and v must be defined";
  if (!on_kernel_device(q) || !on_kernel_device(k) || !on_kernel_device(v))
    return std::string("q, k and v must be ") + kKernelDeviceName + " tensors";
  if (k.device() != q.device() || v.device() != q.device()) return "q, k and v must be on one device";
  const auto dtype = q.scalar_type();
  if (dtype != at::kBFloat16 && dtype != at::kFloat)
    return std::string("dtype ") + c10::toString(dtype) + " is not supported; use bfloat16 or float32";
  if (k.scalar_type() != dtype || v.scalar_type() != dtype) return "q, k and v must share one dtype";
  if (q.dim() != 4) return "q must be (B, T, H, D), got " + shape_text(q);
  if (k.sizes() != q.sizes() || v.sizes() != q.sizes())
    return "q, k and v must have equal shapes (B, T, H, D), got " + shape_text(q) + ", " + shape_text(k) + ", " +
           shape_text(v);
  const int64_t d = q.size(3);
  if (d != 64 && d != 128) return "head dim " + std::to_string(d) + " is not supported; use 64 or 128";
  if (q.size(0) < 1 || q.size(1) < 1 || q.size(2) < 1) return "B, T and H must be >= 1, got " + shape_text(q);
  if (q.size(0) > 65535 || q.size(2) > 65535) return "B and H must be <= 65535, got " + shape_text(q);
  if (q.numel() > (int64_t{1} << 40) || q.size(1) > (int64_t{1} << 30))
    return "tensor too large for 32-bit token indices: " + shape_text(q);
  return "";
}

}  // namespace bla::kernels::detail
