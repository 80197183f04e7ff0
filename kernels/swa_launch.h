// Internal interface between swa_autograd.cpp and the CUDA translation units:
// raw pointers and sizes only, so the .cu files need no LibTorch headers (they
// compile in seconds) and the .cpp needs no kernel code.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bla::kernels::detail {

enum class SwaDtype { kFloat32, kBFloat16 };
enum class SwaFamily { kSimt, kTensorCore };

struct SwaShape {
  int batch = 0;
  int seq = 0;
  int heads = 0;
  int dim = 0;
  int window = 0;  // already normalised: 1 <= window <= seq
  float scale = 0.f;
};

// All tensors contiguous: q, k, v, out, grad_* (B, T, H, D) of dtype;
// lse, delta (B, H, T) float32; bias, grad_bias (B, T, H) float32.
struct SwaForwardArgs {
  SwaShape shape;
  SwaDtype dtype = SwaDtype::kBFloat16;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const float* bias = nullptr;  // may be null
  void* out = nullptr;
  float* lse = nullptr;
};

struct SwaBackwardArgs {
  SwaShape shape;
  SwaDtype dtype = SwaDtype::kBFloat16;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const float* bias = nullptr;  // may be null
  const void* out = nullptr;
  const void* grad_out = nullptr;
  const float* lse = nullptr;
  // Workspace, (B, H, T) floats: rowsum(grad_out * out). With grad_bias,
  // twice that: then the dQ pass writes each query's sum of dZ behind it, the
  // query side of d(bias) (swa_backward_kernels.cuh). (A field of its own
  // would change the kernels' parameter block, and with it ptxas's register
  // allocation of the plain dQ pass: 100 bytes of spills instead of 56.)
  float* delta = nullptr;
  void* grad_q = nullptr;
  void* grad_k = nullptr;
  void* grad_v = nullptr;
  float* grad_bias = nullptr;  // may be null
};

// Launch on `stream`; return the first CUDA error (launch or configuration).
cudaError_t swa_forward_launch(const SwaForwardArgs& args, SwaFamily family, cudaStream_t stream);
cudaError_t swa_backward_launch(const SwaBackwardArgs& args, SwaFamily family, cudaStream_t stream);

}  // namespace bla::kernels::detail
