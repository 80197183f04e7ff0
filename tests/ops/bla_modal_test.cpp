// The modal form of BLA (src/bla/ops/bla/modal.h) and, step by step, the
// algorithm of the fused CUDA kernel (kernels/bla_chunk_forward.cu and
// bla_chunk_backward.cu) written with LibTorch ops in float64: the skewed
// lag products with h, the per-row modal scales, the softmax over slots; then
// the kernel's hand-written backward against autograd of that forward. The
// GPU tests (tests/cuda/bla_kernel_test.cpp) hold the kernel to the LibTorch
// chunked form; these hold the kernel's mathematics to it on any machine.
#include "bla/ops/bla/modal.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>

#include "bla/ops/bla/bla.h"
#include "support/bla_kernel_algorithm.h"

namespace bla::ops {
namespace {

using bla::testing::ChunkGrads;
using bla::testing::ChunkInputs;
using bla::testing::kernel_backward;
using bla::testing::kernel_forward;
using bla::testing::make_tables;
using bla::testing::Tables;
using bla::testing::to_chunks;

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

at::Tensor randn(at::IntArrayRef sizes, at::Generator& generator) { return at::randn(sizes, generator, kF64); }

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return ((got - want).norm() / want.norm()).item<double>();
}

struct Problem {
  int64_t batch, length, heads, dim, window, slots, chunk;
};

ChunkInputs make_inputs(const Problem& pb, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const Tables& t) {
  const BlaOperators ops = bla_operators(pb.window, pb.slots, pb.chunk, at::kDouble, at::kCPU);
  ChunkInputs in;
  in.q = to_chunks(q, pb.chunk);
  in.k = to_chunks(k, pb.chunk);
  in.v = to_chunks(v, pb.chunk);
  const at::Tensor empty = at::zeros({pb.batch, pb.heads, pb.slots, pb.dim}, kF64);
  in.modal_keys = at::matmul(t.basis_inverse, bla_chunk_start_slots(empty, in.k, ops));
  in.modal_values = at::matmul(t.basis_inverse, bla_chunk_start_slots(empty, in.v, ops));
  return in;
}

// Random q, k, v (B, T, H, D) in float64 for a problem, and its tables.
struct Drawn {
  at::Tensor q, k, v;
  int64_t chunks;
  Tables t;
};

Drawn draw(const Problem& pb, at::Generator& generator) {
  Drawn d;
  d.q = randn({pb.batch, pb.length, pb.heads, pb.dim}, generator);
  d.k = randn({pb.batch, pb.length, pb.heads, pb.dim}, generator);
  d.v = randn({pb.batch, pb.length, pb.heads, pb.dim}, generator);
  d.chunks = (pb.length + pb.chunk - 1) / pb.chunk;
  d.t = make_tables(pb.window, pb.slots, pb.chunk, d.chunks);
  return d;
}

class BlaKernelAlgorithm : public ::testing::TestWithParam<Problem> {};

TEST_P(BlaKernelAlgorithm, ForwardMatchesTheChunkedForm) {
  const Problem pb = GetParam();
  auto generator = at::make_generator<at::CPUGeneratorImpl>(7);
  const Drawn d = draw(pb, generator);
  const at::Tensor &q = d.q, &k = d.k, &v = d.v;
  const double scale = 1.0 / std::sqrt(static_cast<double>(pb.dim));

  const at::Tensor out = kernel_forward(make_inputs(pb, q, k, v, d.t), d.t, scale)
                             .reshape({pb.batch, pb.heads, d.chunks * pb.chunk, pb.dim})
                             .slice(2, 0, pb.length)
                             .permute({0, 2, 1, 3});
  const at::Tensor want = blurry_window_attention(q, k, v, BlaOptions{pb.window, pb.slots, 16});
  EXPECT_LT(relative_error(out, want), 1e-11);
}

TEST_P(BlaKernelAlgorithm, HandWrittenBackwardMatchesAutograd) {
  const Problem pb = GetParam();
  auto generator = at::make_generator<at::CPUGeneratorImpl>(11);
  const Drawn d = draw(pb, generator);
  const Tables& t = d.t;
  const double scale = 0.3;

  ChunkInputs in = make_inputs(pb, d.q, d.k, d.v, t);
  for (at::Tensor* x : {&in.q, &in.k, &in.v, &in.modal_keys, &in.modal_values})
    *x = x->detach().clone().requires_grad_(true);
  const at::Tensor out = kernel_forward(in, t, scale);
  const at::Tensor grad_out = at::randn(out.sizes(), generator, kF64);
  const auto want = torch::autograd::grad({out}, {in.q, in.k, in.v, in.modal_keys, in.modal_values}, {grad_out});

  const ChunkGrads got = kernel_backward(in, grad_out, t, scale);
  EXPECT_LT(relative_error(got.q, want[0]), 1e-11);
  EXPECT_LT(relative_error(got.k, want[1]), 1e-11);
  EXPECT_LT(relative_error(got.v, want[2]), 1e-11);
  EXPECT_LT(relative_error(got.modal_keys, want[3]), 1e-11);
  EXPECT_LT(relative_error(got.modal_values, want[4]), 1e-11);
}

INSTANTIATE_TEST_SUITE_P(Shapes, BlaKernelAlgorithm,
                         ::testing::Values(Problem{2, 50, 2, 8, 40, 8, 16},      // r = 5, partial last chunk
                                           Problem{1, 70, 1, 6, 33, 7, 16},      // non-integer r, odd N
                                           Problem{1, 20, 2, 4, 64, 16, 16},     // T < W: the age mask bites
                                           Problem{1, 96, 1, 4, 17, 16, 32}),    // N = W - 1
                         [](const auto& info) {
                           const Problem& p = info.param;
                           return "W" + std::to_string(p.window) + "_N" + std::to_string(p.slots) + "_T" +
                                  std::to_string(p.length);
                         });

TEST(BlaModal, BasisIsWellConditionedForTypicalShapes) {
  for (const auto& [window, slots] : {std::pair<int64_t, int64_t>{512, 64}, {128, 32}, {2048, 64}, {129, 128}}) {
    const BlaModalOperators modal = make_bla_modal_operators(window, slots, 64);
    EXPECT_LT(modal.basis_condition, 300.0) << "W=" << window << " N=" << slots;
    EXPECT_EQ(modal.alpha.sizes(), (at::IntArrayRef{64, slots}));
  }
}

TEST(BlaModal, PartnersPairUp) {
  const BlaModalOperators modal = make_bla_modal_operators(100, 12, 8);
  const at::Tensor p = modal.partner;
  EXPECT_TRUE(p.index_select(0, p).equal(at::arange(12)));  // p(p(m)) = m
}

TEST(BlaModal, FullResolutionIsRejectedWithTheReason) {
  std::string why;
  EXPECT_FALSE(bla_modal_supported(32, 32, 16, &why));
  EXPECT_EQ(why, "slots == window is sliding-window attention; its transition has no eigenbasis (use SWA)");
  try {
    make_bla_modal_operators(32, 32, 16);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "bla: modal form: slots == window is sliding-window attention; its transition has no eigenbasis "
              "(use SWA)");
  }
  EXPECT_TRUE(bla_modal_supported(33, 32, 16));
}

}  // namespace
}  // namespace bla::ops
