// Internal interface between gla_forward.cpp and gla_kernels.cu: raw
// pointers and sizes only, so the .cu needs no LibTorch headers and the .cpp
// no kernel code.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace bla::kernels::detail {

enum class GlaDtype { kFloat32, kFloat64 };  // the compute dtype (and the output's)

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

// An input's element type: each of q, k, v, g may be float32, bfloat16 or
// half (read as float32) where the compute dtype is float32; all float64
// where it is float64.
enum class GlaElement { kFloat32, kFloat64, kBFloat16, kHalf };

// One input: heads-first in its indexing (B, H, T, width), its memory in
// any order of the first three axes (the strides say).
struct GlaInput {
  const void* data = nullptr;
  GlaStrides strides;
  GlaElement element = GlaElement::kFloat32;
};

// Element strides of a (B, H, chunks, Dk, Dv) tensor of chunk states.
struct GlaStateStrides {
  long long batch = 0, head = 0, chunk = 0, row = 0, col = 0;
};

// q, k (B, H, T, Dk); v (B, H, T, Dv); g (B, H, T, Dg); out (B, H, T, Dv)
// in the compute dtype, through out_strides. Workspace in the compute dtype:
// states (B, H, chunks, Dk, Dv), totals (B, H, chunks, Dg); final_state
// (B, H, Dk, Dv) or null; all three contiguous. With `entering` (null
// states, totals and final_state) the output kernel reads the state entering
// each chunk there, through entering_strides, and the state kernel and the
// scan do not run; otherwise `states` holds them afterwards.
struct GlaForwardArgs {
  GlaShape shape;
  GlaDtype dtype = GlaDtype::kFloat32;
  // float32 only: products on tensor cores with tf32 operands where the head
  // dims allow (<= 64; gla_tensor_core_kernels.cuh), for inputs that came
  // from bf16 or half. Otherwise, and for float64, fp32/fp64 FMA.
  bool tensor_cores = false;
  double scale = 1.0;
  GlaInput q, k, v, g;
  void* out = nullptr;
  GlaStrides out_strides;
  void* states = nullptr;
  void* totals = nullptr;
  void* final_state = nullptr;
  const void* entering = nullptr;
  GlaStateStrides entering_strides;
};

// The log gates' gradient, dg_t = sum_{u >= t} (a_u da_u - c_u dc_u)
// summed in float64 (gla_gate_gradient.cuh): a, da, c, dc and dg are
// (B, H, T, width), each through its strides (all 0: contiguous
// heads-first); dg in its own element type.
struct GlaGateGradientArgs {
  int batch = 0, heads = 0, seq = 0, width = 0;
  GlaDtype dtype = GlaDtype::kFloat32;  // float64 iff the inputs are
  GlaInput a, da, c, dc;
  void* dg = nullptr;
  GlaStrides dg_strides;
  GlaElement dg_element = GlaElement::kFloat32;
  void* totals = nullptr;  // workspace: gla_gate_workspace_elements(...) float64 numbers
};

int gla_chunks(int seq);  // chunks of the kernels' length covering seq tokens
// Float64 numbers of the gate gradient's workspace (a sum per token segment and column).
size_t gla_gate_workspace_elements(int batch, int heads, int seq, int width);
// Dynamic shared memory the largest chunk kernel of either form needs, in bytes.
size_t gla_smem_bytes(const GlaShape& shape, GlaDtype dtype);

// Launch on `stream`; return the first CUDA error (launch or configuration).
cudaError_t gla_forward_launch(const GlaForwardArgs& args, cudaStream_t stream);
cudaError_t gla_gate_gradient_launch(const GlaGateGradientArgs& args, cudaStream_t stream);

}  // namespace bla::kernels::detail
