// The ops throw std::invalid_argument naming the bad input and the fix.
// PyTorch turns a C++ exception it does not know into a RuntimeError; the
// registered kernels rethrow it as c10::ValueError, so Python sees a
// ValueError carrying the op's own message.
#pragma once

#include <c10/util/Exception.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace bla::torch_ops {

// The message is copied out of the handler and the ValueError raised after
// it, so the std::invalid_argument is gone before PyTorch's error is built.
template <typename Call>
auto raising_value_error(Call&& call) -> decltype(call()) {
  std::string message;
  try {
    return std::forward<Call>(call)();
  } catch (const std::invalid_argument& error) {
    message = error.what();
  }
  TORCH_CHECK_VALUE(false, message);
}

}  // namespace bla::torch_ops
