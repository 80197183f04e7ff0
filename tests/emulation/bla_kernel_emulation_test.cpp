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

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

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

// x rounded to tf32 by its definition: of the two tf32 values around x (the
// 13 low bits dropped, and one tf32 step further from zero), the nearer in
// double arithmetic, a tie to the one further from zero; a step past the
// largest finite value stands for 2^128 and rounds to infinity.
float tf32_by_definition(float x) {
  if (!std::isfinite(x)) return x;
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const uint32_t low = bits & 0xffffe000u, high = low + 0x2000u;
  float lo, hi;
  std::memcpy(&lo, &low, 4);
  std::memcpy(&hi, &high, 4);
  const double hi_d = std::isfinite(hi) ? double(hi) : std::copysign(std::ldexp(1.0, 128), double(x));
  const double below = std::fabs(double(x) - double(lo)), above = std::fabs(hi_d - double(x));
  return above <= below ? hi : lo;
}

TEST(BlaKernelTables, Tf32RoundingIsToNearestWithTiesAwayFromZero) {
  std::vector<float> values = {0.f, -0.f, 1.f, -1.f, std::numeric_limits<float>::max(),
                               -std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                               std::numeric_limits<float>::min(), std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity()};
  for (const uint32_t tie : {0x3f801000u, 0xbf801000u, 0x3f803000u, 0x00001000u, 0x7f7ff000u}) {
    float x;  // the low 13 bits exactly half a tf32 step: away from zero
    std::memcpy(&x, &tie, 4);
    values.push_back(x);
  }
  torch::manual_seed(5);
  const at::Tensor drawn = torch::randn({4000}) * torch::pow(10.0, torch::randint(-30, 30, {4000}).to(at::kFloat));
  for (int64_t i = 0; i < drawn.numel(); ++i) values.push_back(drawn[i].item<float>());
  const at::Tensor x = torch::tensor(values);
  const at::Tensor got = bla::kernels::tf32_rounded(x);
  int64_t wrong = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float want = tf32_by_definition(values[static_cast<size_t>(i)]), have = got[i].item<float>();
    if (std::memcmp(&want, &have, 4) != 0 && ++wrong <= 5)
      ADD_FAILURE() << "tf32_rounded(" << values[static_cast<size_t>(i)] << ") = " << have << ", want " << want;
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_TRUE(std::isnan(bla::kernels::tf32_rounded(torch::tensor({NAN}))[0].item<float>()));
  EXPECT_TRUE(std::isinf(got[4].item<float>()));  // the largest float is past the largest tf32's half step
  // The tables' copies are their tables rounded so.
  const auto t = bla::testing::bla_kernel_tables(64, 20, torch::kCPU);
  EXPECT_TRUE(torch::equal(t.h_tf32, bla::kernels::tf32_rounded(t.h)));
  EXPECT_FALSE(torch::equal(t.h_tf32, t.h));
  EXPECT_TRUE(torch::equal(t.inject_tf32, bla::kernels::tf32_rounded(t.inject)));
  EXPECT_TRUE(torch::equal(t.basis_t_tf32, bla::kernels::tf32_rounded(t.basis_t)));
}

// bf16 inputs' products read the tables rounded to tf32 (and not the full
// ones), float32 inputs' the full ones (and not the rounded ones), forward
// and backward: zeroing the tables a dtype does not read leaves its output's
// and gradients' bits alone, and passing the full tables where bf16 reads
// the rounded ones changes them (the tensor cores drop the low bits of what
// they are given).
TEST(BlaKernelTables, Bf16InputsReadTheRoundedTablesFloat32TheFullOnes) {
  torch::manual_seed(6);
  const auto tables = bla::testing::bla_kernel_tables(96, 24, torch::kCPU);
  const at::Tensor q = torch::randn({1, 130, 1, 64}), k = torch::randn({1, 130, 1, 64}), v = torch::randn({1, 130, 1, 64});
  const at::Tensor grad_out = torch::randn({1, 130, 1, 64});
  // The output and the gradients of q, k and v, stacked.
  const auto run = [&](const bla::kernels::BlaChunkTables& t, at::ScalarType dtype) {
    const auto leaf = [&](const at::Tensor& x) { return x.to(dtype).requires_grad_(true); };
    const at::Tensor lq = leaf(q), lk = leaf(k), lv = leaf(v);
    const at::Tensor out = bla::kernels::bla_attention(lq, lk, lv, t, 0.0);
    const auto grads = torch::autograd::grad({out}, {lq, lk, lv}, {grad_out.to(dtype)});
    return torch::stack({out.detach(), grads[0], grads[1], grads[2]});
  };
  auto no_full = tables, no_rounded = tables, full_as_rounded = tables;
  for (at::Tensor* x : {&no_full.inject, &no_full.h, &no_full.h_t, &no_full.basis, &no_full.basis_t,
                        &no_rounded.inject_tf32, &no_rounded.h_tf32, &no_rounded.h_t_tf32, &no_rounded.basis_tf32,
                        &no_rounded.basis_t_tf32})
    *x = at::zeros_like(*x);
  full_as_rounded.inject_tf32 = tables.inject;
  full_as_rounded.h_tf32 = tables.h;
  full_as_rounded.h_t_tf32 = tables.h_t;
  full_as_rounded.basis_tf32 = tables.basis;
  full_as_rounded.basis_t_tf32 = tables.basis_t;
  const at::Tensor bf16 = run(tables, at::kBFloat16), f32 = run(tables, at::kFloat);
  EXPECT_TRUE(torch::equal(run(no_full, at::kBFloat16), bf16));
  EXPECT_TRUE(torch::equal(run(no_rounded, at::kFloat), f32));
  EXPECT_FALSE(torch::equal(run(full_as_rounded, at::kBFloat16), bf16));
}

INSTANTIATE_TEST_SUITE_P(Shapes, BlaKernelEmulated,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::ValuesIn(kModes)),
                         [](const ::testing::TestParamInfo<BlaKernelEmulated::ParamType>& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
                         });

}  // namespace
