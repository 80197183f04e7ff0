// Kernels of the GSA ops (src/bla/ops/gsa/gsa.h) in the `bla` namespace.
#include "bla/ops/gsa/gsa.h"
#include "value_errors.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

namespace bla::torch_ops {
namespace {

using ops::GsaOptions;

GsaOptions scaled(double scale) {
  GsaOptions opt;
  opt.scale = scale;
  return opt;
}

at::Tensor gated_slot_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& f,
                                int64_t chunk, double scale, int64_t subchunk) {
  return raising_value_error([&] { return ops::gated_slot_attention(q, k, v, f, GsaOptions{chunk, scale, subchunk}); });
}

at::Tensor gated_slot_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& f, double scale) {
  return raising_value_error([&] { return ops::gated_slot_attention_reference(q, k, v, f, scaled(scale)); });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gated_slot_attention_with_state(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& f, const at::Tensor& keys,
    const at::Tensor& values, int64_t chunk, double scale, int64_t subchunk) {
  return raising_value_error([&] {
    ops::GsaState s{keys, values, 0};
    at::Tensor out = ops::gated_slot_attention_with_state(q, k, v, f, s, GsaOptions{chunk, scale, subchunk});
    return std::make_tuple(out, s.keys, s.values);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gsa_decode_step(const at::Tensor& q, const at::Tensor& k,
                                                               const at::Tensor& v, const at::Tensor& f,
                                                               const at::Tensor& keys, const at::Tensor& values,
                                                               double scale) {
  return raising_value_error([&] {
    ops::GsaState s{keys, values, 0};  // the step replaces the tensors, never writes into them
    at::Tensor out = ops::gsa_decode_step(q, k, v, f, s, scaled(scale));
    return std::make_tuple(out, s.keys, s.values);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(bla, CompositeImplicitAutograd, m) {
  m.impl("gated_slot_attention", TORCH_FN(gated_slot_attention));
  m.impl("gated_slot_attention_reference", TORCH_FN(gated_slot_attention_reference));
  m.impl("gated_slot_attention_with_state", TORCH_FN(gated_slot_attention_with_state));
  m.impl("gsa_decode_step", TORCH_FN(gsa_decode_step));
}

}  // namespace bla::torch_ops
