// The SWA kernels (kernels/swa_*.cu: the SIMT family and the tensor-core one
// with cp.async, ldmatrix and mma.sync) and their LibTorch side
// (kernels/swa_autograd.cpp) on the CPU, under kernels/dev/cpu_emulation.h:
// swa_forward_autograd on CPU tensors, forward and backward, against masked
// softmax attention in float64, as tests/cuda/swa_kernel_test.cpp checks them
// on a GPU (same tolerances). Small shapes: head dims 64 and 128, a window
// below the length, full causal, GatedFWA's bias. Finds indexing, layout and
// synchronisation mistakes without a GPU; says nothing about speed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>

#include "support/swa_kernel_cases.h"
#include "support/tensor_checks.h"

namespace {

using bla::kernels::SwaPath;
using bla::testing::SwaKernelCase;
using bla::testing::SwaKernelMode;

const SwaKernelCase kCases[] = {
    {"odd_seq", 1, 75, 2, 64, 24},
    {"d128_full_causal", 1, 40, 1, 128, 0},
    {"gate_bias", 1, 70, 1, 64, 32, SwaKernelCase::kGateBias},
    {"strided_d128", 1, 33, 2, 128, 20, SwaKernelCase::kNoBias, true},
};
const SwaKernelMode kModes[] = {
    {"simt_f32", at::kFloat, SwaPath::kSimt, 1e-4},
    {"tc_bf16", at::kBFloat16, SwaPath::kTensorCore, 1e-2},
};

class SwaKernelEmulated : public ::testing::TestWithParam<std::tuple<SwaKernelCase, SwaKernelMode>> {};

TEST_P(SwaKernelEmulated, OutputAndGradientsMatchFloat64) {
  const auto& [c, mode] = GetParam();
  torch::manual_seed(11);
  const auto in = bla::testing::swa_kernel_inputs(c, mode.dtype, torch::kCPU);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.dim));
  const auto want = bla::testing::swa_reference(in, c.window, scale);

  auto q = in.q.detach().clone().requires_grad_(true);
  auto k = in.k.detach().clone().requires_grad_(true);
  auto v = in.v.detach().clone().requires_grad_(true);
  at::Tensor bias;
  if (in.bias.defined()) bias = in.bias.detach().clone().requires_grad_(true);
  const at::Tensor out = bla::kernels::swa_forward_autograd(q, k, v, c.window, scale, bias, mode.path);
  out.backward(in.grad_out);

  const char* names[] = {"out", "dq", "dk", "dv", "dbias"};
  const at::Tensor got[] = {out, q.grad(), k.grad(), v.grad(), bias.defined() ? bias.grad() : at::Tensor()};
  const at::Tensor expected[] = {want.out, want.dq, want.dk, want.dv, want.dbias};
  for (int i = 0; i < 5; ++i) {
    if (!expected[i].defined()) continue;
    ASSERT_TRUE(got[i].defined()) << names[i];
    const double error = bla::testing::relative_error(got[i], expected[i]);
    std::printf("    %-5s rel err %.3e\n", names[i], error);
    EXPECT_LT(error, mode.tolerance) << names[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SwaKernelEmulated, ::testing::Combine(::testing::ValuesIn(kCases),
                                                                       ::testing::ValuesIn(kModes)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
                         });

}  // namespace
