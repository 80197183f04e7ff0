// Checks the op, layer and training tests share: the largest difference of
// two tensors (in float64, shapes required equal), the relative error of a
// whole tensor, and an expected std::invalid_argument with its exact message.
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

// ||x - ref|| / ||ref|| in float64 on ref's device (over ||x - ref|| alone
// where ref is all zeros).
inline double relative_error(const torch::Tensor& x, const torch::Tensor& ref) {
  const auto r = ref.to(torch::kDouble);
  const double denom = r.norm().item<double>();
  return (x.to(r.device(), torch::kDouble) - r).norm().item<double>() / (denom > 0 ? denom : 1.0);
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
