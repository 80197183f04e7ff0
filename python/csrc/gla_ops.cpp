// Kernels of the GLA ops (src/bla/ops/gla/gla.h) in the `bla` namespace.
#include "bla/ops/gla/gla.h"
#include "value_errors.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

namespace bla::torch_ops {
namespace {

using ops::GlaOptions;

at::Tensor gated_linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                  int64_t chunk, double scale, int64_t subchunk) {
  return raising_value_error(
      [&] { return ops::gated_linear_attention(q, k, v, g, GlaOptions{chunk, scale, subchunk}); });
}

at::Tensor gated_linear_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& g, double scale) {
  return raising_value_error([&] {
    GlaOptions opt;
    opt.scale = scale;
    return ops::gated_linear_attention_reference(q, k, v, g, opt);
  });
}

std::tuple<at::Tensor, at::Tensor> gated_linear_attention_with_state(const at::Tensor& q, const at::Tensor& k,
                                                                     const at::Tensor& v, const at::Tensor& g,
                                                                     const at::Tensor& state, int64_t chunk,
                                                                     double scale, int64_t subchunk) {
  return raising_value_error([&] {
    ops::GlaState s{state, 0};
    at::Tensor out = ops::gated_linear_attention_with_state(q, k, v, g, s, GlaOptions{chunk, scale, subchunk});
    return std::make_tuple(out, s.state);
  });
}

std::tuple<at::Tensor, at::Tensor> gla_decode_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   const at::Tensor& g, const at::Tensor& state, double scale) {
  return raising_value_error([&] {
    ops::GlaState s{state, 0};  // the step replaces s.state, never writes into it
    GlaOptions opt;
    opt.scale = scale;
    at::Tensor out = ops::gla_decode_step(q, k, v, g, s, opt);
    return std::make_tuple(out, s.state);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(bla, CompositeImplicitAutograd, m) {
  m.impl("gated_linear_attention", TORCH_FN(gated_linear_attention));
  m.impl("gated_linear_attention_reference", TORCH_FN(gated_linear_attention_reference));
  m.impl("gated_linear_attention_with_state", TORCH_FN(gated_linear_attention_with_state));
  m.impl("gla_decode_step", TORCH_FN(gla_decode_step));
}

}  // namespace bla::torch_ops
