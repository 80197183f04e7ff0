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

// Whether CUDA autocast is on (the trainer turns it on for bf16 steps).
inline bool cuda_autocast_enabled() {
#if BLA_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}

// The dtype CUDA autocast casts to.
inline at::ScalarType cuda_autocast_dtype() {
#if BLA_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  return at::autocast::get_autocast_gpu_dtype();
#endif
}

// Autocast keeps casts of weights for the rest of an autocast region; a
// captured CUDA graph must not hold on to them (they would be freed after
// capture), so capture turns the cache off.
inline void set_autocast_cache(bool enabled) { at::autocast::set_autocast_cache_enabled(enabled); }

// tensors[i] *= factor (a one-element tensor on their device) without a host
// sync: one multi-tensor launch where LibTorch has it, else one per tensor.
inline void foreach_mul_(at::TensorList tensors, const at::Tensor& factor) {
#if BLA_TORCH_AT_LEAST(2, 1)
  if (!tensors.empty()) at::_foreach_mul_(tensors, factor);
#else
  for (const auto& t : tensors) const_cast<at::Tensor&>(t).mul_(factor);
#endif
}

// tensors[i] += value (a one-element tensor), likewise.
inline void foreach_add_(at::TensorList tensors, const at::Tensor& value) {
#if BLA_TORCH_AT_LEAST(2, 1)
  if (!tensors.empty()) at::_foreach_add_(tensors, value);
#else
  for (const auto& t : tensors) const_cast<at::Tensor&>(t).add_(value);
#endif
}

// AdamW over many tensors in a few multi-tensor launches, reading the
// learning rate from a device tensor and skipping the whole update (moments
// too) where found_inf holds 1 (PyTorch's fused AdamW, CUDA, LibTorch >= 2.4);
// where grad_divisor is defined the update reads every gradient divided by it
// and writes it back so (the kernel's grad_scale, which AMP uses to unscale).
constexpr bool kHasFusedAdamW = BLA_TORCH_AT_LEAST(2, 4);
inline void fused_adamw_(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                         at::TensorList exp_avg_sqs, at::TensorList steps, const at::Tensor& lr, double beta1,
                         double beta2, double weight_decay, double eps, const at::Tensor& found_inf,
                         const at::Tensor& grad_divisor) {
#if BLA_TORCH_AT_LEAST(2, 4)
  const auto divisor = grad_divisor.defined() ? c10::optional<at::Tensor>(grad_divisor) : c10::nullopt;
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2,
                    weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false, divisor, found_inf);
#else
  (void)params; (void)grads; (void)exp_avgs; (void)exp_avg_sqs; (void)steps; (void)lr;
  (void)beta1; (void)beta2; (void)weight_decay; (void)eps; (void)found_inf; (void)grad_divisor;
  TORCH_CHECK(false, "fused AdamW needs LibTorch >= 2.4");
#endif
}

// A profiler event's duration in microseconds (torch::autograd::profiler::KinetoEvent:
// durationUs() before LibTorch 2.1, durationNs() since).
template <typename Event>
double profiler_event_us(const Event& event) {
#if BLA_TORCH_AT_LEAST(2, 1)
  return static_cast<double>(event.durationNs()) / 1000.0;
#else
  return static_cast<double>(event.durationUs());
#endif
}

}  // namespace bla::compat
