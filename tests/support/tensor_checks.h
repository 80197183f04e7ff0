// Checks the op, layer and training tests share: the largest difference of
// two tensors (in float64, shapes required equal), and an expected
// std::invalid_argument with its exact message.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace bla::testing {

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.numel() == 0) return 0.0;
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

template <class Call>
void expect_invalid_argument(Call&& call, const std::string& message) {
  try {
    call();
    ADD_FAILURE() << "expected std::invalid_argument: " << message;
  } catch (const std::invalid_argument& error) {
    EXPECT_EQ(std::string(error.what()), message);
  }
}

}  // namespace bla::testing
