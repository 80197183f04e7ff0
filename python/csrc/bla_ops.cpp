// Kernels of the BLA ops (src/bla/ops/bla/bla.h) in the `bla` namespace.
#include "bla/ops/bla/bla.h"
#include "value_errors.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

namespace bla::torch_ops {
namespace {

using ops::BlaOptions;
using ops::BlaState;

at::Tensor blurry_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                                   int64_t slots, int64_t chunk, double scale) {
  return raising_value_error([&] { return ops::blurry_window_attention(q, k, v, {window, slots, chunk, scale}); });
}

at::Tensor blurry_window_attention_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           int64_t window, int64_t slots, int64_t chunk, double scale) {
  return raising_value_error(
      [&] { return ops::blurry_window_attention_chunked(q, k, v, {window, slots, chunk, scale}); });
}

at::Tensor blurry_window_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                             int64_t window, int64_t slots, int64_t chunk, double scale) {
  return raising_value_error(
      [&] { return ops::blurry_window_attention_reference(q, k, v, {window, slots, chunk, scale}); });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> blurry_window_attention_with_state(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const c10::optional<at::Tensor>& keys,
    const c10::optional<at::Tensor>& values, int64_t position, int64_t window, int64_t slots, int64_t chunk,
    double scale) {
  return raising_value_error([&] {
    BlaState state{keys.value_or(at::Tensor()), values.value_or(at::Tensor()), position};
    at::Tensor out = ops::blurry_window_attention_with_state(q, k, v, {window, slots, chunk, scale}, &state);
    return std::make_tuple(out, state.keys, state.values);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> bla_decode_step(const at::Tensor& q, const at::Tensor& k,
                                                               const at::Tensor& v, const at::Tensor& keys,
                                                               const at::Tensor& values, int64_t position,
                                                               int64_t window, int64_t slots, int64_t chunk,
                                                               double scale) {
  return raising_value_error([&] {
    BlaState state{keys, values, position};  // the step replaces the tensors, never writes into them
    at::Tensor out = ops::bla_decode_step(q, k, v, state, {window, slots, chunk, scale});
    return std::make_tuple(out, state.keys, state.values);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(bla, CompositeImplicitAutograd, m) {
  m.impl("blurry_window_attention", TORCH_FN(blurry_window_attention));
  m.impl("blurry_window_attention_chunked", TORCH_FN(blurry_window_attention_chunked));
  m.impl("blurry_window_attention_reference", TORCH_FN(blurry_window_attention_reference));
  m.impl("blurry_window_attention_with_state", TORCH_FN(blurry_window_attention_with_state));
  m.impl("bla_decode_step", TORCH_FN(bla_decode_step));
}

}  // namespace bla::torch_ops
