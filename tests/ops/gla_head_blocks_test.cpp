// over_head_blocks (src/bla/ops/gla/head_blocks.h): the gated recurrence as
// passes over blocks of its head dims, held to the whole pass in float64 on
// both decay axes, forward and reversed, with dims that do not divide into
// equal blocks, only Dv or only Dk wider than a block, and the final state;
// every pass it makes fits the block size; the output keeps the passes'
// memory order; a pass that fits runs once, as it is; and through GatedRecurrenceFunction (the CUDA path's autograd), the
// gradients of autograd through the chunked form.
#include "bla/ops/gla/head_blocks.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "bla/ops/gla/backward.h"
#include "bla/ops/gla/gla.h"
#include "bla/ops/gla/internal.h"
#include "support/tensor_checks.h"

using bla::ops::DecayAxis;
using bla::testing::max_abs_diff;

namespace {

const double kScale = 0.6;

// The LibTorch chunked form from a zero state as one pass (no graph), run
// backward in time through flipped copies where `reversed`.
at::Tensor libtorch_pass(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                         DecayAxis axis, bool reversed, at::Tensor* final_state) {
  if (reversed) {
    const bla::ops::GatedForward forward = [](const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& fv,
                                              const at::Tensor& fg, DecayAxis fa, double, bool) {
      return libtorch_pass(fq, fk, fv, fg, fa, false, nullptr);
    };
    return bla::ops::reversed_by_flipping(forward, q, k, v, g, axis, kScale);
  }
  torch::NoGradGuard no_grad;
  auto result =
      bla::ops::gla_internal::chunked_gated_recurrence_libtorch(q, k, v, g, axis, at::Tensor(), 16, 16, kScale);
  if (final_state != nullptr) *final_state = result.final_state;
  return result.output;
}

struct Inputs {
  at::Tensor q, k, v, g;
};

Inputs draw(int64_t dk, int64_t dv, DecayAxis axis, int64_t seq = 37) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const int64_t dg = axis == DecayAxis::Key ? dk : dv;
  return {torch::randn({2, 2, seq, dk}, f64), torch::randn({2, 2, seq, dk}, f64), torch::randn({2, 2, seq, dv}, f64),
          torch::rand({2, 2, seq, dg}, f64) * -0.8 - 0.01};
}

double relative(const at::Tensor& got, const at::Tensor& want) {
  return max_abs_diff(got, want) / (1.0 + want.abs().max().item<double>());
}

}  // namespace

TEST(GlaHeadBlocks, PassesOverBlocksOfTheHeadDimsGiveTheWholePassInFloat64) {
  struct Shape {
    int64_t dk, dv, most, calls;  // calls: blocks of Dk times blocks of Dv
  };
  // 11 = 4 + 4 + 3 and 7 = 4 + 3; only Dv wider (9 = 5 + 4); only Dk wider (10 = 5 + 5).
  const std::vector<Shape> shapes = {{11, 7, 4, 6}, {4, 9, 5, 2}, {10, 3, 5, 2}};
  for (const DecayAxis axis : {DecayAxis::Key, DecayAxis::Value}) {
    for (const bool reversed : {false, true}) {
      for (const auto& shape : shapes) {
        torch::manual_seed(shape.dk * 31 + shape.dv + (reversed ? 7 : 0));
        const auto in = draw(shape.dk, shape.dv, axis);
        const std::string what = std::string(axis == DecayAxis::Key ? "key" : "value") + " axis" +
                                 (reversed ? ", reversed" : "") + ", Dk " + std::to_string(shape.dk) + ", Dv " +
                                 std::to_string(shape.dv) + ", blocks of " + std::to_string(shape.most);
        int calls = 0;
        int64_t widest = 0;
        const bla::ops::StatefulGatedPass pass = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                     const at::Tensor& g, at::Tensor* final_state) {
          ++calls;
          widest = std::max({widest, q.size(3), v.size(3), g.size(3)});
          return libtorch_pass(q, k, v, g, axis, reversed, reversed ? nullptr : final_state);
        };
        at::Tensor state, whole_state;
        const auto got = bla::ops::over_head_blocks(pass, in.q, in.k, in.v, in.g, axis, shape.most,
                                                    reversed ? nullptr : &state);
        const auto want = libtorch_pass(in.q, in.k, in.v, in.g, axis, reversed, reversed ? nullptr : &whole_state);
        EXPECT_EQ(calls, shape.calls) << what;
        EXPECT_LE(widest, shape.most) << what;
        ASSERT_EQ(got.sizes(), want.sizes()) << what;
        EXPECT_LT(relative(got, want), 1e-12) << what;
        if (!reversed) {
          ASSERT_EQ(state.sizes(), whole_state.sizes()) << what;
          EXPECT_LT(relative(state, whole_state), 1e-12) << what;
        }
      }
    }
  }
}

// The kernels give o in q's memory order (token-major for the layers'
// transposed (B, T, H, D) views); the blocks' output keeps it.
TEST(GlaHeadBlocks, TheOutputKeepsThePassesMemoryOrder) {
  torch::manual_seed(6);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto token_major = [&](int64_t width) { return torch::randn({2, 37, 3, width}, f64).transpose(1, 2); };
  const auto q = token_major(5), k = token_major(5), v = token_major(9);
  const auto g = torch::rand({2, 37, 3, 5}, f64).transpose(1, 2) * -0.8 - 0.01;
  const bla::ops::StatefulGatedPass pass = [](const at::Tensor& bq, const at::Tensor& bk, const at::Tensor& bv,
                                              const at::Tensor& bg, at::Tensor*) {
    const auto o = libtorch_pass(bq, bk, bv, bg, DecayAxis::Key, false, nullptr);
    return at::empty({o.size(0), o.size(2), o.size(1), o.size(3)}, o.options()).transpose(1, 2).copy_(o);
  };
  const auto got = bla::ops::over_head_blocks(pass, q, k, v, g, DecayAxis::Key, 4, nullptr);
  EXPECT_LT(got.stride(1), got.stride(2)) << "heads inside tokens";
  EXPECT_TRUE(got.transpose(1, 2).is_contiguous());
  EXPECT_LT(relative(got, libtorch_pass(q, k, v, g, DecayAxis::Key, false, nullptr)), 1e-12);
}

TEST(GlaHeadBlocks, APassWhoseDimsFitRunsOnceAsItIs) {
  torch::manual_seed(3);
  const auto in = draw(6, 5, DecayAxis::Key);
  int calls = 0;
  at::Tensor returned;
  const bla::ops::StatefulGatedPass pass = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               const at::Tensor& g, at::Tensor* final_state) {
    ++calls;
    EXPECT_TRUE(q.is_same(in.q) && k.is_same(in.k) && v.is_same(in.v) && g.is_same(in.g));
    returned = libtorch_pass(q, k, v, g, DecayAxis::Key, false, final_state);
    return returned;
  };
  at::Tensor state;
  const auto got = bla::ops::over_head_blocks(pass, in.q, in.k, in.v, in.g, DecayAxis::Key, 6, &state);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(got.is_same(returned));
  EXPECT_EQ(state.sizes(), (std::vector<int64_t>{2, 2, 6, 5}));
}

TEST(GlaHeadBlocks, ABlockSizeBelowOneIsRejected) {
  const auto in = draw(4, 4, DecayAxis::Key, 3);
  const bla::ops::StatefulGatedPass pass = [](const at::Tensor&, const at::Tensor&, const at::Tensor& v,
                                              const at::Tensor&, at::Tensor*) { return v; };
  try {
    bla::ops::over_head_blocks(pass, in.q, in.k, in.v, in.g, DecayAxis::Key, 0, nullptr);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "over_head_blocks: most must be >= 1, got 0");
  }
}

namespace {

// The LibTorch form in blocks of 4 columns as the autograd Function's pass:
// the backward's passes swap Dk and Dv (backward.h), so both get split.
struct BlockedPass {
  static at::Tensor run(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                        DecayAxis axis, double, at::Tensor* final_state, bool reversed) {
    const bla::ops::StatefulGatedPass pass = [&](const at::Tensor& bq, const at::Tensor& bk, const at::Tensor& bv,
                                                 const at::Tensor& bg, at::Tensor* state) {
      return libtorch_pass(bq, bk, bv, bg, axis, reversed, state);
    };
    return bla::ops::over_head_blocks(pass, q, k, v, g, axis, 4, reversed ? nullptr : final_state);
  }
  static at::Tensor gate_gradient(const at::Tensor& a, const at::Tensor& da, const at::Tensor& c, const at::Tensor& dc,
                                  const at::Tensor& g) {
    return bla::ops::gate_gradient_by_scan(a, da, c, dc, g);
  }
};

}  // namespace

TEST(GlaHeadBlocks, TheAutogradFunctionOverBlocksGivesAutogradsGradients) {
  for (const DecayAxis axis : {DecayAxis::Key, DecayAxis::Value}) {
    torch::manual_seed(axis == DecayAxis::Key ? 4 : 5);
    const auto in = draw(6, 9, axis, 29);
    std::vector<at::Tensor> leaves, expected_leaves;
    for (const auto* x : {&in.q, &in.k, &in.v, &in.g}) {
      leaves.push_back(x->clone().requires_grad_(true));
      expected_leaves.push_back(x->clone().requires_grad_(true));
    }
    const auto outputs = bla::ops::GatedRecurrenceFunction<BlockedPass>::apply(
        leaves[0], leaves[1], leaves[2], leaves[3], axis == DecayAxis::Value, kScale);
    const auto expected = bla::ops::gla_internal::chunked_gated_recurrence_libtorch(
        expected_leaves[0], expected_leaves[1], expected_leaves[2], expected_leaves[3], axis, at::Tensor(), 16, 16,
        kScale);
    const auto grad_out = torch::randn_like(expected.output);
    outputs[0].backward(grad_out);
    expected.output.backward(grad_out);
    const char* axis_name = axis == DecayAxis::Key ? "key" : "value";
    EXPECT_LT(relative(outputs[0].detach(), expected.output.detach()), 1e-12) << "out, " << axis_name << " axis";
    EXPECT_LT(relative(outputs[1], expected.final_state.detach()), 1e-12) << "final state, " << axis_name << " axis";
    const char* names[] = {"dq", "dk", "dv", "dg"};
    for (size_t i = 0; i < leaves.size(); ++i)
      EXPECT_LT(relative(leaves[i].grad(), expected_leaves[i].grad()), 1e-10) << names[i] << ", " << axis_name << " axis";
  }
}
