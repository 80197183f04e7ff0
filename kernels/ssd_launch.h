// Internal interface between ssd_forward.cpp and ssd_kernels.cu: raw
// pointers and sizes only, so the .cu needs no LibTorch headers and the .cpp
// no kernel code.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace bla::kernels::detail {

enum class SsdDtype { kFloat32, kBFloat16 };

struct SsdShape {
  int batch = 0, seq = 0, heads = 0, head_dim = 0, groups = 0, d_state = 0;  // head_dim, d_state: 64 or 128
};

// Contiguous time-major tensors: x, y (B, T, H, P); Bm, Cm (B, T, G, N) of
// `dtype`; log_decay, key_scale (B, T, H) float (key_scale may be null: 1);
// y is float when float_output, else `dtype`. Workspace: states
// (B, H, ssd_chunks(T), N, P) and totals (B, H, ssd_chunks(T)) float;
// final_state (B, H, N, P) float or null.
struct SsdForwardArgs {
  SsdShape shape;
  SsdDtype dtype = SsdDtype::kFloat32;
  bool float_output = false;
  const void* x = nullptr;
  const float* log_decay = nullptr;
  const float* key_scale = nullptr;
  const void* Bm = nullptr;
  const void* Cm = nullptr;
  void* y = nullptr;
  float* states = nullptr;
  float* totals = nullptr;
  float* final_state = nullptr;
};

int ssd_chunks(int seq);  // chunks of the kernels' length covering seq tokens
// Dynamic shared memory the larger of the two chunk kernels needs, in bytes,
// or 0 where head_dim or d_state is not 64 or 128.
size_t ssd_smem_bytes(const SsdShape& shape, SsdDtype dtype);

// Launch on `stream`; return the first CUDA error (launch or configuration).
cudaError_t ssd_forward_launch(const SsdForwardArgs& args, cudaStream_t stream);

}  // namespace bla::kernels::detail
