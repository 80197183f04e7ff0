// running_sum and reverse_running_sum (src/bla/ops/scan.h) against LibTorch's
// cumsum in float64: values and gradients, along every dimension of a 4-D
// tensor, at lengths shorter than a block, of whole blocks, and with a
// partial last block.
#include "bla/ops/scan.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "support/tensor_checks.h"

using bla::testing::max_abs_diff;

TEST(RunningSum, EqualsCumsumInValueAndGradientAlongEveryDimension) {
  torch::manual_seed(2);
  for (const int64_t length : {1, 7, 64, 65, 200, 1000}) {
    for (int64_t dim = 0; dim < 4; ++dim) {
      std::vector<int64_t> sizes = {2, 3, 4, 5};
      sizes[dim] = length;
      const auto x = torch::randn(sizes, torch::kFloat64).requires_grad_(true);
      const auto dy = torch::randn(sizes, torch::kFloat64);
      for (const bool reverse : {false, true}) {
        const auto got = reverse ? bla::ops::reverse_running_sum(x, dim) : bla::ops::running_sum(x, dim);
        const auto want = reverse ? x.flip({dim}).cumsum(dim).flip({dim}) : x.cumsum(dim);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_LT(max_abs_diff(got, want), 1e-11) << "length " << length << " dim " << dim << " reverse " << reverse;
        const auto g_got = torch::autograd::grad({got}, {x}, {dy})[0];
        const auto g_want = torch::autograd::grad({want}, {x}, {dy})[0];
        EXPECT_LT(max_abs_diff(g_got, g_want), 1e-11) << "gradient, length " << length << " dim " << dim;
      }
    }
  }
  // A negative dim counts from the end.
  const auto x = torch::randn({3, 130}, torch::kFloat64);
  EXPECT_LT(max_abs_diff(bla::ops::running_sum(x, -1), x.cumsum(1)), 1e-11);
}
