// Internal interface between gla_forward.cpp and gla_kernels.cu: raw
// pointers and sizes only, so the .cu needs no LibTorch headers and the .cpp
// no kernel code.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace bla::kernels::detail {

enum class GlaDtype { kFloat32, kFloat64 };

struct GlaShape {
  int batch = 0, heads = 0, seq = 0, dk = 0, dv = 0;
  bool value_axis =
      false;  // the gate multiplies the state's value axis (g has Dv columns) instead of its key axis (Dk)
  // Backward in time: the recurrence over the rows in reverse order, token t
  // (row T - 1 - t) decayed by g's row T - t (none for t = 0); o in the rows'
  // own order. The gradients' passes (src/bla/ops/gla/backward.h).
  bool reversed = false;
};

// Element strides of a (B, H, T, width) operand's batch, head and token axes
// (its width axis has stride 1). All 0: contiguous heads-first.
struct GlaStrides {
  long long batch = 0, head = 0, token = 0;
};

// Tensors of dtype, heads-first in their indexing (their memory may be
// token-major: the strides say): q, k (B, H, T, Dk); v, out (B, H, T, Dv);
// g (B, H, T, Dg). Workspace: states (B, H, chunks, Dk, Dv), totals (B, H,
// chunks, Dg); final_state (B, H, Dk, Dv) or null; all three contiguous.
struct GlaForwardArgs {
  GlaShape shape;
  GlaDtype dtype = GlaDtype::kFloat32;
  // float32 only: products on tensor cores with tf32 operands where the head
  // dims allow (<= 64; gla_tensor_core_kernels.cuh), for inputs that came
  // from bf16 or half. Otherwise, and for float64, fp32/fp64 FMA.
  bool tensor_cores = false;
  double scale = 1.0;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* g = nullptr;
  void* out = nullptr;
  void* states = nullptr;
  void* totals = nullptr;
  void* final_state = nullptr;
  GlaStrides q_strides, k_strides, v_strides, g_strides, out_strides;
};

int gla_chunks(int seq);  // chunks of the kernels' length covering seq tokens
// Dynamic shared memory the largest chunk kernel of either form needs, in bytes.
size_t gla_smem_bytes(const GlaShape& shape, GlaDtype dtype);

// Launch on `stream`; return the first CUDA error (launch or configuration).
cudaError_t gla_forward_launch(const GlaForwardArgs& args, cudaStream_t stream);

}  // namespace bla::kernels::detail
