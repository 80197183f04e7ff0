// The gatedfwa op on CUDA tensors (src/bla/ops/gatedfwa/dispatch.cpp: the SWA
// kernel with G = cumsum(g) as its bias, over segments) against the op's
// blocked form in float64 on the CPU: the output and the gradients of q, k, v
// and the log gate, in float32 and bfloat16, at odd lengths, T = 1, a window
// past T, head dims 64 and 128, and a sequence of two segments (the float32
// gate gradient bounded as its rounding accumulates over a segment). Decays
// are those of the layer's initial range (0.001 to 0.1 per token); far stronger
// gates cost the gate's gradient precision (docs/mixers.md, "GatedFWA").
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "bla/ops/gatedfwa/gatedfwa.h"
#include "support/tensor_checks.h"

namespace {

using bla::testing::relative_error;

struct Case {
  const char* name;
  int64_t batch, seq, heads, dim, window;
  double decay;  // the mean of -g per token
};

struct Mode {
  const char* name;
  at::ScalarType dtype;
  double tolerance;         // on ||x - ref|| / ||ref||
  bool gate_error_grows;    // whether the gate gradient's bound grows with the tokens summed
};

const Case kCases[] = {
    {"odd_seq", 2, 150, 2, 64, 40, 0.05},
    {"d128", 1, 777, 2, 128, 300, 0.02},
    {"single_token", 1, 1, 2, 64, 8, 0.1},
    {"window_past_seq", 2, 37, 3, 64, 64, 0.1},
    {"window_one", 1, 50, 1, 64, 1, 0.1},
    {"long_two_segments", 2, 4096, 2, 64, 512, 0.1},  // the strongest initial decay; segments of 2048
};

const Mode kModes[] = {
    {"f32", at::kFloat, 1e-4, true},
    // bf16: every gradient, the gate's included, within the same bound (the
    // kernel's d(bias) is a row sum minus a column sum, not a sum of rows' misses)
    {"bf16", at::kBFloat16, 1e-2, false},
};

class GatedfwaKernel : public ::testing::TestWithParam<std::tuple<Case, Mode>> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(GatedfwaKernel, OpMatchesTheBlockedFormInFloat64) {
  const auto& [c, mode] = GetParam();
  torch::manual_seed(97 + c.seq + c.window);
  const auto f64 = torch::TensorOptions().dtype(at::kDouble);
  // Inputs drawn in float64, rounded to the mode's dtype, so both sides see the same numbers.
  auto draw = [&](std::vector<int64_t> sizes) { return torch::randn(sizes, f64).to(mode.dtype).to(at::kDouble); };
  const auto q = draw({c.batch, c.seq, c.heads, c.dim}), k = draw({c.batch, c.seq, c.heads, c.dim}),
             v = draw({c.batch, c.seq, c.heads, c.dim}), grad_out = draw({c.batch, c.seq, c.heads, c.dim});
  // g <= 0 with mean -decay: a log-sigmoid gate, as the layer makes it (float32, as under autocast).
  const auto g = torch::log_sigmoid(torch::randn({c.batch, c.seq, c.heads}, f64) + std::log(std::expm1(c.decay)) * -1.0)
                     .to(at::kFloat)
                     .to(at::kDouble);
  bla::ops::GatedWindowOptions opt;
  opt.window = c.window;

  auto run = [&](const torch::Device& device, at::ScalarType dtype, at::ScalarType gate_dtype) {
    auto leaf = [&](const at::Tensor& x, at::ScalarType type) {
      return x.to(device, type).detach().requires_grad_(true);
    };
    std::vector<at::Tensor> leaves = {leaf(q, dtype), leaf(k, dtype), leaf(v, dtype), leaf(g, gate_dtype)};
    auto out = bla::ops::gated_window_attention(leaves[0], leaves[1], leaves[2], leaves[3], opt);
    out.backward(grad_out.to(device, dtype));
    return std::vector<at::Tensor>{out.detach(), leaves[0].grad(), leaves[1].grad(), leaves[2].grad(),
                                   leaves[3].grad()};
  };
  const auto expected = run(torch::kCPU, at::kDouble, at::kDouble);
  const auto got = run(torch::kCUDA, mode.dtype, at::kFloat);
  const char* names[] = {"out", "dq", "dk", "dv", "dg"};
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_TRUE(got[i].defined()) << names[i];
    EXPECT_EQ(got[i].device().type(), torch::kCUDA) << names[i];
    EXPECT_TRUE(got[i].isfinite().all().item<bool>()) << names[i];
    const double err = relative_error(got[i], expected[i]);
    // The gate's gradient is the reverse cumulative sum of the kernel's bias
    // gradient over a segment; in float32 the rounding of G's per-token terms
    // adds up like a random walk, so its bound grows with the square root of
    // the tokens summed (at least 128; at most a segment, 2,048 here).
    const double summed = static_cast<double>(std::clamp<int64_t>(c.seq, 128, 2048));
    const double tolerance =
        i == 4 && mode.gate_error_grows ? mode.tolerance * std::sqrt(summed / 128.0) : mode.tolerance;
    EXPECT_LT(err, tolerance) << names[i] << ": relative error " << err;
    std::printf("    %-3s rel err %.3e\n", names[i], err);
  }
  EXPECT_GT(-g.cumsum(1).min().item<double>(), c.decay * c.seq / 4);  // the case reaches the decay it is meant to
}

std::string case_name(const testing::TestParamInfo<std::tuple<Case, Mode>>& info) {
  return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
}

INSTANTIATE_TEST_SUITE_P(Shapes, GatedfwaKernel, testing::Combine(testing::ValuesIn(kCases), testing::ValuesIn(kModes)),
                         case_name);

// What the kernel cannot take (value dim unlike the key dim, head dim 96) runs
// the blocked form on the GPU, with the same result.
TEST(GatedfwaKernelFallback, UnsupportedHeadDimsRunTheBlockedFormOnTheGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(5);
  const auto f64 = torch::TensorOptions().dtype(at::kDouble);
  const auto q = torch::randn({1, 40, 2, 96}, f64), k = torch::randn({1, 40, 2, 96}, f64),
             v = torch::randn({1, 40, 2, 32}, f64);
  const auto g = torch::log_sigmoid(torch::randn({1, 40, 2}, f64) + 2.0);
  bla::ops::GatedWindowOptions opt;
  opt.window = 9;
  const auto expected = bla::ops::gated_window_attention(q, k, v, g, opt);
  const auto got = bla::ops::gated_window_attention(q.cuda(), k.cuda(), v.cuda(), g.cuda(), opt);
  EXPECT_LT((got.cpu() - expected).abs().max().item<double>(), 1e-12);
}

}  // namespace
