#include "bla/ops/attention/attention.h"

#include "support/finite_difference.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using bla::ops::sliding_window_attention;
using bla::ops::sliding_window_attention_reference;
using bla::ops::WindowOptions;

namespace {

at::Tensor rand64(std::vector<int64_t> shape) { return torch::randn(shape, torch::kDouble); }

double max_error(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(Attention, FullCausalMatchesReference) {
  torch::manual_seed(0);
  auto q = rand64({2, 13, 3, 8}), k = rand64({2, 13, 3, 8}), v = rand64({2, 13, 3, 5});
  EXPECT_LT(max_error(sliding_window_attention(q, k, v, {}), sliding_window_attention_reference(q, k, v, {})), 1e-12);
}

TEST(Attention, SlidingWindowMatchesReferenceForManyWindows) {
  torch::manual_seed(1);
  auto q = rand64({2, 17, 2, 4}), k = rand64({2, 17, 2, 4}), v = rand64({2, 17, 2, 4});
  for (int64_t window : {1, 2, 5, 16, 17, 40}) {
    WindowOptions opt{window, 0.0};
    EXPECT_LT(max_error(sliding_window_attention(q, k, v, opt), sliding_window_attention_reference(q, k, v, opt)), 1e-12)
        << "window " << window;
  }
}

TEST(Attention, WindowOfOneReturnsTheValues) {
  torch::manual_seed(2);
  auto q = rand64({1, 6, 1, 4}), k = rand64({1, 6, 1, 4}), v = rand64({1, 6, 1, 4});
  EXPECT_LT(max_error(sliding_window_attention(q, k, v, {1, 0.0}), v), 1e-14);
}

TEST(Attention, FutureTokensDoNotChangeThePast) {
  torch::manual_seed(3);
  auto q = rand64({1, 10, 2, 4}), k = rand64({1, 10, 2, 4}), v = rand64({1, 10, 2, 4});
  auto out = sliding_window_attention(q, k, v, {4, 0.0});
  auto k2 = k.clone(), v2 = v.clone();
  k2.slice(1, 7).normal_();
  v2.slice(1, 7).normal_();
  auto out2 = sliding_window_attention(q, k2, v2, {4, 0.0});
  EXPECT_LT(max_error(out.slice(1, 0, 7), out2.slice(1, 0, 7)), 1e-14);
}

TEST(Attention, BiasMatchesReference) {
  torch::manual_seed(4);
  auto q = rand64({2, 9, 2, 4}), k = rand64({2, 9, 2, 4}), v = rand64({2, 9, 2, 4});
  auto bias = torch::cumsum(-torch::rand({2, 9, 2}, torch::kDouble), 1);
  WindowOptions opt{3, 0.0};
  EXPECT_LT(max_error(sliding_window_attention(q, k, v, opt, bias), sliding_window_attention_reference(q, k, v, opt, bias)),
            1e-12);
}

TEST(Attention, GradientsMatchFiniteDifferences) {
  torch::manual_seed(5);
  auto f = [](const std::vector<at::Tensor>& x) { return sliding_window_attention(x[0], x[1], x[2], {3, 0.0}); };
  EXPECT_TRUE(bla::testing::gradients_match(f, {rand64({1, 5, 2, 3}), rand64({1, 5, 2, 3}), rand64({1, 5, 2, 3})}));
}

TEST(Attention, Float32AgreesWithFloat64) {
  torch::manual_seed(6);
  auto q = rand64({2, 33, 2, 16}), k = rand64({2, 33, 2, 16}), v = rand64({2, 33, 2, 16});
  auto exact = sliding_window_attention_reference(q, k, v, {8, 0.0});
  auto fast = sliding_window_attention(q.to(torch::kFloat), k.to(torch::kFloat), v.to(torch::kFloat), {8, 0.0});
  EXPECT_LT(max_error(fast.to(torch::kDouble), exact), 1e-5);
}

TEST(Attention, BadShapesAreRejected) {
  auto x = torch::zeros({1, 4, 2, 3});
  try {
    sliding_window_attention(x, x.view({1, 4, 6}), x, {});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "attention: q, k, v must be (batch, seq, heads, head_dim)");
  }
  try {
    sliding_window_attention(x, x, x, {-1, 0.0});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "attention: window (-1) must be >= 0 (0 = full causal)");
  }
}

}  // namespace
