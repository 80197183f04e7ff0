// Kernels of the SSD ops (src/bla/ops/mamba2/mamba2.h) in the `bla` namespace.
#include "bla/ops/mamba2/mamba2.h"
#include "value_errors.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

namespace bla::torch_ops {
namespace {

at::Tensor selective_state_space(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& B,
                                 const at::Tensor& C, const c10::optional<at::Tensor>& D, int64_t chunk) {
  return raising_value_error([&] {
    return ops::selective_state_space(x, dt, A, B, C, D.value_or(at::Tensor()), ops::SsdOptions{chunk});
  });
}

at::Tensor selective_state_space_reference(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                           const at::Tensor& B, const at::Tensor& C,
                                           const c10::optional<at::Tensor>& D) {
  return raising_value_error(
      [&] { return ops::selective_state_space_reference(x, dt, A, B, C, D.value_or(at::Tensor())); });
}

std::tuple<at::Tensor, at::Tensor> selective_state_space_with_state(const at::Tensor& x, const at::Tensor& dt,
                                                                    const at::Tensor& A, const at::Tensor& B,
                                                                    const at::Tensor& C,
                                                                    const c10::optional<at::Tensor>& D,
                                                                    const at::Tensor& state, int64_t chunk) {
  return raising_value_error([&] {
    ops::SsdState s{state, 0};
    at::Tensor y = ops::selective_state_space_with_state(x, dt, A, B, C, D.value_or(at::Tensor()),
                                                         ops::SsdOptions{chunk}, s);
    return std::make_tuple(y, s.state);
  });
}

std::tuple<at::Tensor, at::Tensor> ssd_decode_step(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                                   const at::Tensor& B, const at::Tensor& C,
                                                   const c10::optional<at::Tensor>& D, const at::Tensor& state) {
  return raising_value_error([&] {
    ops::SsdState s{state, 0};  // the step replaces s.state, never writes into it
    at::Tensor y = ops::ssd_decode_step(x, dt, A, B, C, D.value_or(at::Tensor()), s);
    return std::make_tuple(y, s.state);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(bla, CompositeImplicitAutograd, m) {
  m.impl("selective_state_space", TORCH_FN(selective_state_space));
  m.impl("selective_state_space_reference", TORCH_FN(selective_state_space_reference));
  m.impl("selective_state_space_with_state", TORCH_FN(selective_state_space_with_state));
  m.impl("ssd_decode_step", TORCH_FN(ssd_decode_step));
}

}  // namespace bla::torch_ops
