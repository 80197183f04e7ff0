// The fused BLA kernels (kernels/bla_*.cu) and their LibTorch side
// (kernels/bla_autograd.cpp) on the CPU, under kernels/dev/cpu_emulation.h:
// bla_attention on CPU tensors, forward and backward through its autograd
// Function, against the LibTorch chunked form in float64, as
// tests/cuda/bla_kernel_test.cpp checks them on a GPU (same tolerances:
// 1e-4 for float32 inputs, 1e-2 for bf16). Small shapes (the emulation runs
// each block's 256 threads as OS threads): one case per compiled slot count
// and head dim, odd lengths, and 1, 2 and 5 chunks (the carry walks the
// chunks two at a time). Finds indexing, layout and synchronisation
// mistakes in the kernels without a GPU; says nothing about their speed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <string>
#include <tuple>

#include "bla/ops/bla/bla.h"
#include "support/bla_kernel_cases.h"
#include "support/tensor_checks.h"

namespace {

using bla::testing::BlaKernelCase;
using bla::testing::BlaKernelMode;

const BlaKernelCase kCases[] = {
    {"slots_8_in_32", 1, 100, 2, 64, 40, 8},    // two chunks, the second cut short
    {"slots_48_in_64", 1, 70, 1, 64, 256, 48},  // T above one chunk, below the window
    {"slots_100_in_128", 1, 65, 1, 64, 300, 100},
    {"d128_slots_20", 1, 66, 1, 128, 64, 20},
    {"one_chunk", 2, 40, 1, 64, 64, 16},           // the carry's walk: one chunk, a pair cut short
    {"five_chunks", 1, 300, 1, 64, 96, 24},        // two pairs of chunks and one more
};
const BlaKernelMode kModes[] = {{"f32", at::kFloat, 1e-4}, {"bf16", at::kBFloat16, 1e-2}};

class BlaKernelEmulated : public ::testing::TestWithParam<std::tuple<BlaKernelCase, BlaKernelMode>> {};

TEST_P(BlaKernelEmulated, OutputAndGradientsMatchTheChunkedFormInFloat64) {
  const auto& [c, mode] = GetParam();
  torch::manual_seed(3);
  const auto tables = bla::testing::bla_kernel_tables(c.window, c.slots, torch::kCPU);
  auto draw = [&] { return torch::randn({c.batch, c.seq, c.heads, c.dim}).to(mode.dtype).requires_grad_(true); };
  const at::Tensor q = draw(), k = draw(), v = draw();
  const at::Tensor out = bla::kernels::bla_attention(q, k, v, tables, 0.0);
  const at::Tensor grad_out = torch::randn(out.sizes()).to(mode.dtype);
  const auto grads = torch::autograd::grad({out}, {q, k, v}, {grad_out});

  const auto to64 = [](const at::Tensor& x) { return x.detach().to(at::kDouble).requires_grad_(true); };
  const at::Tensor q64 = to64(q), k64 = to64(k), v64 = to64(v);
  const bla::ops::BlaOptions opt{c.window, c.slots, 64};
  const at::Tensor want = bla::ops::blurry_window_attention_chunked(q64, k64, v64, opt);
  const auto want_grads = torch::autograd::grad({want}, {q64, k64, v64}, {grad_out.to(at::kDouble)});

  const char* names[] = {"out", "dq", "dk", "dv"};
  const at::Tensor got[] = {out, grads[0], grads[1], grads[2]};
  const at::Tensor expected[] = {want, want_grads[0], want_grads[1], want_grads[2]};
  for (int i = 0; i < 4; ++i) {
    const double error = bla::testing::relative_error(got[i], expected[i]);
    std::printf("    %-4s rel err %.3e\n", names[i], error);
    EXPECT_LT(error, mode.tolerance) << names[i];
  }
}

// q, k and v as views of one (B, T, 3 H D) tensor (mixers::project_stacked):
// the kernels read them where they lie and give the bits of contiguous
// copies, output and gradients; two sequences, for the batch stride.
TEST_P(BlaKernelEmulated, StackedProjectionViewsGiveTheBitsOfContiguousCopies) {
  const auto& [c, mode] = GetParam();
  torch::manual_seed(4);
  const auto tables = bla::testing::bla_kernel_tables(c.window, c.slots, torch::kCPU);
  const at::Tensor qkv = torch::randn({2, c.seq, 3 * c.heads * c.dim}).to(mode.dtype);
  const at::Tensor grad_out = torch::randn({2, c.seq, c.heads, c.dim}).to(mode.dtype);
  at::Tensor outs[2], grads[2];
  for (const bool views : {true, false}) {
    const auto s = bla::testing::stacked_qkv(qkv, c.heads, c.dim, views);
    EXPECT_EQ(s.q.is_contiguous(), !views);
    outs[views] = bla::kernels::bla_attention(s.q, s.k, s.v, tables, 0.0);
    grads[views] = torch::autograd::grad({outs[views]}, {s.x}, {grad_out})[0];
  }
  EXPECT_TRUE(torch::equal(outs[1], outs[0]));
  EXPECT_TRUE(torch::equal(grads[1], grads[0]));
}

INSTANTIATE_TEST_SUITE_P(Shapes, BlaKernelEmulated,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::ValuesIn(kModes)),
                         [](const ::testing::TestParamInfo<BlaKernelEmulated::ParamType>& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
                         });

}  // namespace
