// Stacked projections (mixers/common/members.h, project_stacked): several
// projections of one input as one product give each projection's own
// output and the same gradients for the input, every weight and every bias,
// solo and in an ensemble (float64), with or without biases among them.
#include "bla/mixers/common/heads.h"
#include "bla/mixers/common/members.h"

#include "support/tensor_checks.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

namespace {

using bla::mixers::make_projection;
using bla::mixers::project;
using bla::mixers::project_stacked;
using bla::testing::max_abs_diff;

// Projections of `in` columns to each of `outs`; those named in `biased`
// with a bias (random, so that a bias added twice or not at all shows).
std::vector<torch::nn::Linear> projections(const std::vector<int64_t>& outs, int64_t in, int64_t members,
                                           const std::vector<bool>& biased = {}) {
  std::vector<torch::nn::Linear> linears;
  for (size_t i = 0; i < outs.size(); ++i) {
    const int64_t out = outs[i];
    const bool bias = i < biased.size() && biased[i];
    auto linear =
        bias ? torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(true)) : make_projection(in, out, 0.3);
    linear->to(torch::kDouble);
    torch::NoGradGuard no_grad;
    if (members > 0) linear->weight.set_data(torch::randn({members, out, in}, torch::kDouble) * 0.3);
    if (bias)
      linear->bias.set_data(torch::randn(
          members > 0 ? std::vector<int64_t>{members, out} : std::vector<int64_t>{out}, torch::kDouble));
    linears.push_back(linear);
  }
  return linears;
}

// Outputs and every gradient of the stacked product against one product per
// projection, for the same upstream gradients.
void expect_stacked_matches_separate(int64_t members, const std::vector<bool>& biased = {},
                                     const std::vector<int64_t>& outs = {8, 8, 5}) {
  torch::manual_seed(3);
  const int64_t in = 12, rows = members > 0 ? 2 * members : 3;
  auto linears = projections(outs, in, members, biased);
  auto x = torch::randn({rows, 7, in}, torch::kDouble).requires_grad_(true);
  std::vector<torch::Tensor> grads;
  for (const auto& linear : linears) grads.push_back(torch::randn({rows, 7, linear->weight.size(-2)}, torch::kDouble));

  auto stacked = project_stacked(linears, x);
  ASSERT_EQ(stacked.size(), linears.size());
  torch::autograd::backward(stacked, grads);
  const auto x_grad = x.grad().clone();
  std::vector<torch::Tensor> weight_grads, bias_grads;
  for (auto& linear : linears) {
    weight_grads.push_back(linear->weight.grad().clone());
    linear->weight.mutable_grad() = torch::Tensor();
    if (linear->bias.defined()) {
      bias_grads.push_back(linear->bias.grad().clone());
      linear->bias.mutable_grad() = torch::Tensor();
    } else {
      bias_grads.emplace_back();
    }
  }
  x.mutable_grad() = torch::Tensor();

  std::vector<torch::Tensor> separate;
  for (const auto& linear : linears) separate.push_back(project(linear, x));
  torch::autograd::backward(separate, grads);
  for (size_t i = 0; i < linears.size(); ++i) {
    EXPECT_EQ(stacked[i].sizes(), separate[i].sizes()) << "projection " << i;
    EXPECT_LT(max_abs_diff(stacked[i], separate[i]), 1e-12) << "projection " << i;
    EXPECT_LT(max_abs_diff(weight_grads[i], linears[i]->weight.grad()), 1e-12) << "projection " << i;
    if (linears[i]->bias.defined())
      EXPECT_LT(max_abs_diff(bias_grads[i], linears[i]->bias.grad()), 1e-12) << "projection " << i;
  }
  EXPECT_LT(max_abs_diff(x_grad, x.grad()), 1e-12);
}

TEST(ProjectStacked, GivesEachProjectionsOutputAndGradientsSolo) { expect_stacked_matches_separate(0); }

TEST(ProjectStacked, GivesEachMembersProjectionsInAnEnsemble) { expect_stacked_matches_separate(3); }

TEST(ProjectStacked, OneProjectionIsThatProjection) {
  torch::manual_seed(4);
  auto linears = projections({6}, 4, 0);
  auto x = torch::randn({2, 3, 4}, torch::kDouble);
  auto out = project_stacked(linears, x);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(torch::equal(out[0], project(linears[0], x)));
}

// 5 + 8 + 5 outputs come out of a product of 24 columns, each projection's
// padded to a multiple of 8 (16 bytes in bf16): every view without a bias
// starts at a multiple of 8 columns with the product's row stride, solo and
// in an ensemble; a view with a bias is its own tensor (the bias added after
// the product), of its projection's width.
TEST(ProjectStacked, ViewsStartAtAMultipleOfEightColumns) {
  for (const int64_t members : {0, 3}) {
    for (const bool bias : {false, true}) {
      auto linears = projections({5, 8, 5}, 12, members, {false, false, bias});
      auto x = torch::randn({members > 0 ? 2 * members : 3, 7, 12}, torch::kDouble);
      const auto parts = project_stacked(linears, x);
      ASSERT_EQ(parts.size(), 3u);
      for (size_t i = 0; i < parts.size(); ++i) {
        const int64_t out = linears[i]->weight.size(-2);
        EXPECT_EQ(parts[i].size(-1), out) << "members " << members << " bias " << bias << " view " << i;
        EXPECT_EQ(parts[i].stride(-1), 1);
        if (i == 2 && bias) {
          EXPECT_EQ(parts[i].stride(-2), out) << "members " << members;
          continue;
        }
        EXPECT_EQ(parts[i].stride(-2), 24) << "members " << members << " bias " << bias << " view " << i;
        EXPECT_EQ(parts[i].storage_offset() % 24, static_cast<int64_t>(8 * i)) << "members " << members << " view " << i;
      }
    }
  }
  auto aligned = projections({8, 8, 8}, 12, 0);
  EXPECT_EQ(project_stacked(aligned, torch::randn({3, 7, 12}, torch::kDouble))[0].stride(-2), 24);
}

// A bias-free first projection whose width is not a multiple of 8 (padding
// between projections): outputs and gradients still match separate products.
TEST(ProjectStacked, PaddingBetweenProjectionsGivesEachProjectionsOutputAndGradients) {
  expect_stacked_matches_separate(0, {false, false, true}, {5, 8, 5});
}

// The product in bf16 (as autocast hands it) and a float32 bias: the biased
// output is float32, the bf16 product plus the unrounded bias, where a bias
// rounded to bf16 would be off by up to 0.03 at 4..8.
TEST(ProjectStacked, ABiasIsAddedInItsOwnDtype) {
  torch::manual_seed(6);
  auto linears = projections({8, 8, 5}, 12, 0, {false, false, true});
  for (auto& linear : linears) linear->weight.set_data(linear->weight.to(torch::kBFloat16));
  linears[2]->bias.set_data(torch::rand({5}) * 4 + 4);  // float32 in [4, 8)
  auto x = torch::randn({3, 7, 12}).to(torch::kBFloat16);
  const auto parts = project_stacked(linears, x);
  EXPECT_EQ(parts[0].scalar_type(), torch::kBFloat16);
  ASSERT_EQ(parts[2].scalar_type(), torch::kFloat);
  const auto product = torch::matmul(x, linears[2]->weight.t()).to(torch::kFloat);
  EXPECT_TRUE(torch::equal(parts[2], product + linears[2]->bias));
}

// GatedFWA's q, k, v (no bias) and gate (a bias) as one product.
TEST(ProjectStacked, ProjectionsWithAndWithoutBiasesStackSolo) {
  expect_stacked_matches_separate(0, {false, false, true});
}

TEST(ProjectStacked, ProjectionsWithAndWithoutBiasesStackInAnEnsemble) {
  expect_stacked_matches_separate(3, {true, false, true});
}

}  // namespace
