// Every difference between the LibTorch versions bla-train builds against
// (Debian's 1.13.1 on CPU, PyTorch 2.x wheels with CUDA) lives in this file.
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

#define BLA_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#include <ATen/autocast_mode.h>

namespace bla::compat {

// True when at::scaled_dot_product_attention exists (LibTorch >= 2.0).
constexpr bool kHasSdpa = BLA_TORCH_AT_LEAST(2, 0);

// Causal attention through SDPA where it exists. q, k, v: (B, H, T, D).
// Returns an undefined tensor when SDPA is not available, so callers keep
// their own matmul form as the fallback.
inline at::Tensor causal_sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
#if BLA_TORCH_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true,
                                          /*scale=*/scale);
#else
  (void)q; (void)k; (void)v; (void)scale;
  return {};
#endif
}

// Turns CUDA autocast to `dtype` on or off (bf16 training on GPUs).
inline void set_cuda_autocast(bool enabled, at::ScalarType dtype) {
#if BLA_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
  if (!enabled) at::autocast::clear_cache();
}

}  // namespace bla::compat
