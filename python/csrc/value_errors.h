// The ops throw std::invalid_argument naming the bad input and the fix.
// PyTorch turns a C++ exception it does not know into a RuntimeError; the
// registered kernels rethrow it as c10::ValueError, so Python sees a
// ValueError carrying the op's own message.
#pragma once

#include <c10/util/Exception.h>

#include <stdexcept>
#include <utility>

namespace bla::torch_ops {

template <typename Call>
auto raising_value_error(Call&& call) -> decltype(call()) {
  try {
    return std::forward<Call>(call)();
  } catch (const std::invalid_argument& error) {
    TORCH_CHECK_VALUE(false, error.what());
  }
}

}  // namespace bla::torch_ops
