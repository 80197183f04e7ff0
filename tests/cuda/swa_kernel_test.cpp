// The SWA CUDA kernels (kernels/swa_*.cu) against masked softmax attention
// computed by LibTorch in float64 on the GPU: outputs, log-sum-exp and every
// gradient, on fresh random inputs, for both kernel families (SIMT and tensor
// cores) and both dtypes. Output buffers are filled with NaN before each call,
// so an element the kernel forgets to write fails the test.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bla_kernels/swa.h"
#include "support/swa_kernel_cases.h"
#include "support/tensor_checks.h"

namespace {

using bla::testing::relative_error;

using bla::kernels::SwaPath;

using Case = bla::testing::SwaKernelCase;
using Mode = bla::testing::SwaKernelMode;
using Inputs = bla::testing::SwaKernelInputs;
using Expected = bla::testing::SwaKernelExpected;

const Case kCases[] = {
    {"odd_seq", 2, 100, 3, 64, 32},
    {"seq_below_window", 1, 77, 2, 128, 200},
    {"window_eq_seq", 2, 130, 2, 64, 130},
    {"window_zero_full_causal", 1, 200, 2, 128, 0},
    {"gate_bias", 2, 150, 2, 64, 40, Case::kGateBias},
    {"random_bias", 1, 96, 2, 128, 50, Case::kRandomBias},
    {"long_d64", 2, 1000, 3, 64, 256, Case::kNoBias, true},
    {"long_d128_bias", 1, 777, 2, 128, 300, Case::kGateBias},
    {"single_token", 1, 1, 1, 64, 4},
    {"window_one", 1, 50, 1, 64, 1},
};

const Mode kModes[] = {
    {"simt_f32", at::kFloat, SwaPath::kSimt, 1e-4},
    {"simt_bf16", at::kBFloat16, SwaPath::kSimt, 1e-2},
    {"tc_bf16", at::kBFloat16, SwaPath::kTensorCore, 1e-2},
};

Inputs make_inputs(const Case& c, at::ScalarType dtype) {
  return bla::testing::swa_kernel_inputs(c, dtype, torch::kCUDA);
}
Expected reference(const Inputs& in, int64_t window, double scale) {
  return bla::testing::swa_reference(in, window, scale);
}

// Every element finite (a NaN left from the poison means it was never written)
// and the whole tensor within tolerance of the reference.
void expect_close(const char* what, const at::Tensor& x, const at::Tensor& ref, double tolerance) {
  ASSERT_TRUE(x.defined()) << what;
  const int64_t bad = x.isfinite().logical_not().sum().item<int64_t>();
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << x.numel() << " elements not finite (unwritten?)";
  const double err = relative_error(x, ref);
  EXPECT_LT(err, tolerance) << what << ": relative error " << err;
  std::printf("    %-6s rel err %.3e\n", what, err);
}

at::Tensor poisoned(at::IntArrayRef sizes, at::ScalarType dtype) {
  return torch::full(sizes, std::numeric_limits<float>::quiet_NaN(),
                     torch::TensorOptions().device(torch::kCUDA).dtype(dtype));
}

class SwaKernel : public ::testing::TestWithParam<std::tuple<Case, Mode>> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
};

// The raw passes into NaN-filled buffers, then the autograd entry point.
TEST_P(SwaKernel, MatchesFloat64Reference) {
  const auto& [c, mode] = GetParam();
  torch::manual_seed(1234 + c.seq * 7 + c.window);
  const Inputs in = make_inputs(c, mode.dtype);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.dim));
  const Expected ref = reference(in, c.window, scale);

  const auto B = c.batch, T = c.seq, H = c.heads;
  at::Tensor out = poisoned(in.q.sizes(), mode.dtype), lse = poisoned({B, H, T}, at::kFloat);
  bla::kernels::swa_forward_out(in.q, in.k, in.v, in.bias, c.window, 0.0, mode.path, out, lse);
  at::Tensor dq = poisoned(in.q.sizes(), mode.dtype), dk = poisoned(in.q.sizes(), mode.dtype),
             dv = poisoned(in.q.sizes(), mode.dtype), dbias;
  if (in.bias.defined()) dbias = poisoned({B, T, H}, at::kFloat);
  bla::kernels::swa_backward_out(in.q, in.k, in.v, in.bias, out, lse, in.grad_out, c.window, 0.0, mode.path, dq, dk,
                                 dv, dbias);
  torch::cuda::synchronize();
  std::printf("  %s / %s (B=%ld T=%ld H=%ld D=%ld W=%ld)\n", c.name, mode.name, static_cast<long>(B),
              static_cast<long>(T), static_cast<long>(H), static_cast<long>(c.dim), static_cast<long>(c.window));
  expect_close("out", out, ref.out, mode.tolerance);
  // lse is float32 in both modes: its error is the logits' rounding.
  expect_close("lse", lse, ref.lse, mode.dtype == at::kFloat ? 1e-5 : 1e-2);
  expect_close("dq", dq, ref.dq, mode.tolerance);
  expect_close("dk", dk, ref.dk, mode.tolerance);
  expect_close("dv", dv, ref.dv, mode.tolerance);
  if (in.bias.defined()) expect_close("dbias", dbias, ref.dbias, mode.tolerance);

  // Autograd: the same numbers through swa_forward_autograd and backward().
  auto q = in.q.detach().clone().requires_grad_(true);
  auto k = in.k.detach().clone().requires_grad_(true);
  auto v = in.v.detach().clone().requires_grad_(true);
  at::Tensor bias;
  if (in.bias.defined()) bias = in.bias.detach().clone().requires_grad_(true);
  auto y = bla::kernels::swa_forward_autograd(q, k, v, c.window, scale, bias, mode.path);
  y.backward(in.grad_out);
  expect_close("ag.out", y.detach(), ref.out, mode.tolerance);
  expect_close("ag.dq", q.grad(), ref.dq, mode.tolerance);
  expect_close("ag.dk", k.grad(), ref.dk, mode.tolerance);
  expect_close("ag.dv", v.grad(), ref.dv, mode.tolerance);
  if (bias.defined()) expect_close("ag.db", bias.grad(), ref.dbias, mode.tolerance);
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<Case, Mode>>& info) {
  return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
}

INSTANTIATE_TEST_SUITE_P(Shapes, SwaKernel, ::testing::Combine(::testing::ValuesIn(kCases), ::testing::ValuesIn(kModes)),
                         case_name);

class SwaKernelApi : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
  static at::Tensor cuda_randn(at::IntArrayRef sizes, at::ScalarType dtype = at::kBFloat16) {
    return torch::randn(sizes, torch::TensorOptions().device(torch::kCUDA).dtype(dtype));
  }
};

// Same inputs, same bits: no race between warps or blocks.
TEST_F(SwaKernelApi, TensorCorePassesAreDeterministic) {
  auto q = cuda_randn({2, 700, 2, 128}), k = cuda_randn({2, 700, 2, 128}), v = cuda_randn({2, 700, 2, 128});
  auto go = cuda_randn({2, 700, 2, 128});
  auto bias = torch::cumsum(torch::log_sigmoid(cuda_randn({2, 700, 2}, at::kFloat) + 3.0), 1);
  auto run = [&] {
    at::Tensor out = poisoned(q.sizes(), at::kBFloat16), lse = poisoned({2, 2, 700}, at::kFloat);
    bla::kernels::swa_forward_out(q, k, v, bias, 200, 0.0, SwaPath::kTensorCore, out, lse);
    at::Tensor dq = poisoned(q.sizes(), at::kBFloat16), dk = poisoned(q.sizes(), at::kBFloat16),
               dv = poisoned(q.sizes(), at::kBFloat16), db = poisoned({2, 700, 2}, at::kFloat);
    bla::kernels::swa_backward_out(q, k, v, bias, out, lse, go, 200, 0.0, SwaPath::kTensorCore, dq, dk, dv, db);
    return std::vector<at::Tensor>{out, lse, dq, dk, dv, db};
  };
  const auto first = run(), second = run();
  for (size_t i = 0; i < first.size(); ++i) EXPECT_TRUE(torch::equal(first[i], second[i])) << "tensor " << i;
}

// window 0, window T and any window > T are all full causal attention.
TEST_F(SwaKernelApi, WindowsAtOrPastSeqAreFullCausal) {
  auto q = cuda_randn({1, 300, 2, 64}), k = cuda_randn({1, 300, 2, 64}), v = cuda_randn({1, 300, 2, 64});
  auto full = bla::kernels::swa_forward_autograd(q, k, v, 0, 0.0);
  EXPECT_TRUE(torch::equal(full, bla::kernels::swa_forward_autograd(q, k, v, 300, 0.0)));
  EXPECT_TRUE(torch::equal(full, bla::kernels::swa_forward_autograd(q, k, v, 1000, 0.0)));
  EXPECT_FALSE(torch::equal(full, bla::kernels::swa_forward_autograd(q, k, v, 299, 0.0)));
}

TEST_F(SwaKernelApi, SupportedSaysWhyNot) {
  auto q = cuda_randn({1, 8, 2, 64});
  std::string why;
  EXPECT_TRUE(bla::kernels::swa_supported(q, q, q, 4, &why)) << why;
  EXPECT_FALSE(bla::kernels::swa_supported(q.cpu(), q.cpu(), q.cpu(), 4, &why));
  EXPECT_EQ(why, "q, k and v must be CUDA tensors");
  auto q96 = cuda_randn({1, 8, 2, 96});
  EXPECT_FALSE(bla::kernels::swa_supported(q96, q96, q96, 4, &why));
  EXPECT_EQ(why, "head dim 96 is not supported; use 64 or 128");
  auto h = q.to(at::kHalf);
  EXPECT_FALSE(bla::kernels::swa_supported(h, h, h, 4, &why));
  EXPECT_EQ(why, "dtype Half is not supported; use bfloat16 or float32");
  EXPECT_FALSE(bla::kernels::swa_supported(q, q, q, -1, &why));
  EXPECT_EQ(why, "window must be >= 0 (0 = full causal), got -1");
}

TEST_F(SwaKernelApi, BadArgumentsThrowWithTheFix) {
  auto q = cuda_randn({1, 8, 2, 64});
  auto bad_bias = cuda_randn({1, 8, 3}, at::kFloat);
  try {
    bla::kernels::swa_forward_autograd(q, q, q, 4, 0.0, bad_bias);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "bla: swa kernel: bias must be (B, T, H) = (1, 8, 2), got [1, 8, 3]");
  }
  auto f = q.to(at::kFloat);
  try {
    bla::kernels::swa_forward_autograd(f, f, f, 4, 0.0, {}, SwaPath::kTensorCore);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "bla: swa kernel: the tensor-core path needs bfloat16 inputs, got Float; use SwaPath::kSimt or kAuto");
  }
}

}  // namespace
