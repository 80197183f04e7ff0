// Kernels of softmax and sliding-window attention (src/bla/ops/attention/attention.h)
// in the `bla` namespace.
#include "bla/ops/attention/attention.h"
#include "value_errors.h"

#include <ATen/ATen.h>
#include <torch/library.h>

namespace bla::torch_ops {
namespace {

at::Tensor sliding_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                                    double scale, const c10::optional<at::Tensor>& bias) {
  return raising_value_error([&] {
    return ops::sliding_window_attention(q, k, v, {window, scale}, bias.value_or(at::Tensor()));
  });
}

at::Tensor sliding_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              int64_t window, double scale, const c10::optional<at::Tensor>& bias) {
  return raising_value_error([&] {
    return ops::sliding_window_attention_reference(q, k, v, {window, scale}, bias.value_or(at::Tensor()));
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(bla, CompositeImplicitAutograd, m) {
  m.impl("sliding_window_attention", TORCH_FN(sliding_window_attention));
  m.impl("sliding_window_attention_reference", TORCH_FN(sliding_window_attention_reference));
}

}  // namespace bla::torch_ops
