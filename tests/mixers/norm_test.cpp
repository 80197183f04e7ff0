// RMSNorm (mixers/common/norm.h), the one normalisation of the model and the
// mixers: its LibTorch form against the definition in float64, groups,
// reduced precision, per-member weights, and model.norm_eps reaching the
// layers' own norms.
#include "bla/mixers/common/norm.h"

#include "support/mixer_builder.h"
#include "support/tensor_checks.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace {

using bla::mixers::rms_norm;
using bla::mixers::rms_norm_libtorch;
using bla::testing::max_abs_diff;

// x / sqrt(mean(x^2) + eps) * w, one row at a time, in float64.
torch::Tensor definition(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  auto rows = x.reshape({-1, x.size(-1)});
  auto out = torch::empty_like(rows);
  for (int64_t r = 0; r < rows.size(0); ++r) {
    const double mean_square = rows[r].pow(2).sum().item<double>() / static_cast<double>(rows.size(1));
    out[r] = rows[r] / std::sqrt(mean_square + eps) * w;
  }
  return out.view(x.sizes());
}

TEST(RmsNorm, IsTheDefinitionInFloat64) {
  torch::manual_seed(0);
  auto x = torch::randn({3, 5, 8}, torch::kDouble), w = torch::randn({8}, torch::kDouble);
  EXPECT_LT(max_abs_diff(rms_norm(x, w, 1e-5), definition(x, w, 1e-5)), 1e-12);
  EXPECT_LT(max_abs_diff(rms_norm(x, w, 0.25), definition(x, w, 0.25)), 1e-12);
  bla::mixers::RMSNorm module(8, 0.25);
  EXPECT_LT(max_abs_diff(module->forward(x), definition(x, torch::ones({8}, torch::kDouble), 0.25)), 1e-6);
}

TEST(RmsNorm, GroupsAreNormalisedEachOnItsOwn) {
  torch::manual_seed(1);
  auto x = torch::randn({2, 3, 12}, torch::kDouble), w = torch::randn({12}, torch::kDouble);
  auto expected = torch::cat({definition(x.slice(-1, 0, 4), w.slice(0, 0, 4), 1e-5),
                              definition(x.slice(-1, 4, 8), w.slice(0, 4, 8), 1e-5),
                              definition(x.slice(-1, 8, 12), w.slice(0, 8, 12), 1e-5)},
                             -1);
  EXPECT_LT(max_abs_diff(rms_norm(x, w, 1e-5, 3), expected), 1e-12);
  bla::testing::expect_invalid_argument([&] { rms_norm(x, w, 1e-5, 5); },
                                        "rms_norm: the last dimension (12) must divide into 5 groups");
}

TEST(RmsNorm, ReducedPrecisionIsNormalisedInFloat32AndReturnedInItsDtype) {
  torch::manual_seed(2);
  auto x = (torch::randn({4, 16}) * 300).to(torch::kBFloat16), w = torch::randn({16});
  auto out = rms_norm(x, w, 1e-5);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  auto normed = definition(x.to(torch::kDouble), torch::ones({16}, torch::kDouble), 1e-5);
  auto expected = normed.to(torch::kFloat).to(torch::kBFloat16) * w.to(torch::kBFloat16);
  EXPECT_LT(max_abs_diff(out, expected), 0.02 * expected.abs().max().item<double>());
}

TEST(RmsNorm, AnEnsembleWeightHoldsOneRowPerMember) {
  torch::manual_seed(3);
  const int64_t members = 3, batch = 2;
  auto x = torch::randn({members * batch, 5, 8}, torch::kDouble), w = torch::randn({members, 8}, torch::kDouble);
  auto out = rms_norm(x, w, 1e-5);
  for (int64_t e = 0; e < members; ++e) {
    auto rows = x.slice(0, e * batch, (e + 1) * batch);
    EXPECT_LT(max_abs_diff(out.slice(0, e * batch, (e + 1) * batch), definition(rows, w[e], 1e-5)), 1e-12)
        << "member " << e;
  }
}

// A huge epsilon shrinks the normalised output towards zero: the layers'
// output norms read model.norm_eps (MixerContext::norm_eps), not a constant.
TEST(RmsNorm, MixerOutputNormsUseTheModelsEpsilon) {
  for (const std::string type : {"gla", "gsa", "mamba2"}) {
    torch::manual_seed(4);
    auto usual = bla::testing::build_mixer(type, "{}", "n.yaml", 32, 1e-5);
    torch::manual_seed(4);
    auto huge = bla::testing::build_mixer(type, "{}", "n.yaml", 32, 1e8);
    auto x = torch::randn({2, 6, 32});
    torch::NoGradGuard no_grad;
    const double usual_size = usual->forward(x).abs().max().item<double>();
    const double huge_size = huge->forward(x).abs().max().item<double>();
    EXPECT_GT(usual_size, 1e-3) << type;
    EXPECT_LT(huge_size, 1e-3 * usual_size) << type;
  }
}

}  // namespace
