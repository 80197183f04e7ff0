// Internal interface between model_autograd.cpp and the model kernels
// (model_norm.cu, model_swiglu.cu, model_rotary.cu): raw pointers and sizes
// only, so the .cu files need no LibTorch headers and the .cpp no kernel code.
// Every launcher runs on `stream`, allocates nothing, never synchronises (the
// training step is captured into a CUDA graph) and returns the launch error.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bla::kernels::detail {

enum class ModelDtype { kFloat32, kBFloat16 };

// ---- RMSNorm: y = cast(cast(x * r) * cast(w)), r = rsqrt(mean(x^2) + eps) in float32.
// x, y, grad_y, grad_x: (rows, dim) contiguous of x_dtype; w, grad_w: (dim) of
// w_dtype (float32, or x_dtype); rstd: (rows) float32.
struct RmsNormForwardArgs {
  int64_t rows = 0;
  int dim = 0;
  ModelDtype x_dtype = ModelDtype::kFloat32;
  ModelDtype w_dtype = ModelDtype::kFloat32;
  float eps = 0.f;
  const void* x = nullptr;
  const void* w = nullptr;
  void* y = nullptr;
  float* rstd = nullptr;
};

struct RmsNormBackwardArgs {
  int64_t rows = 0;
  int dim = 0;
  ModelDtype x_dtype = ModelDtype::kFloat32;
  ModelDtype w_dtype = ModelDtype::kFloat32;
  const void* x = nullptr;
  const void* w = nullptr;
  const float* rstd = nullptr;
  const void* grad_y = nullptr;
  void* grad_x = nullptr;
  // Both null to skip the weight gradient; else grad_w_partial is a
  // (rms_norm_backward_blocks(rows, dim, ...), dim) float32 workspace.
  float* grad_w_partial = nullptr;
  void* grad_w = nullptr;
};

// Largest row width the kernels take (any dim up to this, odd ones too).
constexpr int kRmsNormMaxDim = 8192;
// Blocks of the backward launch (rows of its weight-gradient workspace): a
// function of the shape and the device only, so results are deterministic.
int rms_norm_backward_blocks(int64_t rows, int dim, ModelDtype x_dtype, int sm_count);
cudaError_t rms_norm_forward_launch(const RmsNormForwardArgs& args, int sm_count, cudaStream_t stream);
cudaError_t rms_norm_backward_launch(const RmsNormBackwardArgs& args, int sm_count, cudaStream_t stream);

// ---- SwiGLU activation: h = silu(g) * u, elementwise over n elements.
struct SwigluArgs {
  int64_t n = 0;
  ModelDtype dtype = ModelDtype::kFloat32;
  const void* gate = nullptr;
  const void* up = nullptr;
  const void* grad_h = nullptr;  // backward only
  void* h = nullptr;             // forward only
  void* grad_gate = nullptr;     // backward only
  void* grad_up = nullptr;       // backward only
};
cudaError_t swiglu_forward_launch(const SwigluArgs& args, int sm_count, cudaStream_t stream);
cudaError_t swiglu_backward_launch(const SwigluArgs& args, int sm_count, cudaStream_t stream);

// ---- Rotary embedding (rotate-half) of up to two tensors in one launch:
// a (tokens, heads_a, dim) and b (tokens, heads_b, dim), tokens = B*T, token
// index b*T + t at position start + t. inverse rotates by -angle (the
// backward). b may be null with heads_b = 0. out_a/out_b: like a/b.
struct RotaryArgs {
  int64_t tokens = 0;
  int seq = 0;
  int heads_a = 0;
  int heads_b = 0;
  int dim = 0;  // even
  int64_t start = 0;
  float base = 0.f;
  bool inverse = false;
  ModelDtype dtype = ModelDtype::kFloat32;
  const void* a = nullptr;
  const void* b = nullptr;
  void* out_a = nullptr;
  void* out_b = nullptr;
};
constexpr int kRotaryMaxDim = 4096;
cudaError_t rotary_launch(const RotaryArgs& args, cudaStream_t stream);

}  // namespace bla::kernels::detail
