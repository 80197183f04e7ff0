// Kernels of GatedFWA's gated window attention (src/bla/ops/gatedfwa/gatedfwa.h)
// in the `bla` namespace.
#include "bla/ops/gatedfwa/gatedfwa.h"
#include "value_errors.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

namespace bla::torch_ops {
namespace {

using ops::GatedWindowOptions;

at::Tensor gated_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& log_gate, int64_t window, double scale, int64_t block) {
  return raising_value_error(
      [&] { return ops::gated_window_attention(q, k, v, log_gate, GatedWindowOptions{window, scale, block}); });
}

at::Tensor gated_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& log_gate, int64_t window, double scale) {
  return raising_value_error([&] {
    return ops::gated_window_attention_reference(q, k, v, log_gate, GatedWindowOptions{window, scale});
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> gated_window_decode_step(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_gate, const at::Tensor& keys,
    const at::Tensor& values, const at::Tensor& gate_sums, int64_t position, int64_t window, double scale) {
  return raising_value_error([&] {
    // The C++ step writes the new token into its rings in place; a functional
    // op leaves its inputs as they were, so it writes into copies.
    ops::GatedWindowState s{keys.clone(), values.clone(), gate_sums, position};
    at::Tensor out = ops::gated_window_decode_step(q, k, v, log_gate, GatedWindowOptions{window, scale}, s);
    return std::make_tuple(out, s.keys, s.values, s.gate_sums);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(bla, CompositeImplicitAutograd, m) {
  m.impl("gated_window_attention", TORCH_FN(gated_window_attention));
  m.impl("gated_window_attention_reference", TORCH_FN(gated_window_attention_reference));
  m.impl("gated_window_decode_step", TORCH_FN(gated_window_decode_step));
}

}  // namespace bla::torch_ops
