// The Mamba2-like layer: its forward against a composition of the plain
// definitions (torch's conv1d, the SSD token loop, the gated RMSNorm), decoding
// in shapes the generic decode test does not reach, initialisation ranges
// (docs/mixers.md), the state-size formula ("State size" there) and config errors.
#include "bla/config/config.h"
#include "bla/mixers/mamba2/mamba2_layer.h"
#include "bla/ops/mamba2/mamba2.h"

#include "support/finite_difference.h"
#include "support/mixer_builder.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace {

using bla::mixers::Mamba2Layer;
using bla::mixers::MixerImpl;
using bla::testing::decode_error;

std::shared_ptr<MixerImpl> build(const std::string& params, int64_t d_model = 32) {
  return bla::testing::build_mixer("mamba2", params, "m.yaml", d_model);
}

std::string build_error(const std::string& params, int64_t d_model = 32) {
  return bla::testing::mixer_build_error("mamba2", params, "m.yaml", d_model);
}

// The layer's map written from the definitions, with its own parameters.
torch::Tensor reference_forward(MixerImpl& layer, const torch::Tensor& x, int64_t d_state, int64_t head_dim,
                                int64_t ngroups) {
  auto p = layer.named_parameters();
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t d_inner = p["out_proj.weight"].size(1), H = d_inner / head_dim;
  const int64_t channels = d_inner + 2 * ngroups * d_state, K = p["conv_weight"].size(1);
  auto parts = x.matmul(p["in_proj.weight"].t()).split_with_sizes({d_inner, channels, H}, -1);
  // nn.Conv1d(channels, channels, K, groups=channels, padding=K-1) truncated to the first T outputs.
  auto conv = at::conv1d(parts[1].transpose(1, 2), p["conv_weight"].unsqueeze(1), p["conv_bias"], {1}, {K - 1}, {1},
                         channels)
                  .narrow(2, 0, T)
                  .transpose(1, 2);
  auto xBC = torch::silu(conv).split_with_sizes({d_inner, ngroups * d_state, ngroups * d_state}, -1);
  auto y = bla::ops::selective_state_space_reference(
      xBC[0].reshape({B, T, H, head_dim}), torch::softplus(parts[2] + p["dt_bias"]), -torch::exp(p["A_log"]),
      xBC[1].reshape({B, T, ngroups, d_state}), xBC[2].reshape({B, T, ngroups, d_state}), p["D"]);
  auto gated = (y.reshape({B, T, d_inner}) * torch::silu(parts[0])).reshape({B, T, ngroups, d_inner / ngroups});
  auto normed = gated / torch::sqrt(gated.pow(2).mean(-1, true) + 1e-5);
  return (normed.reshape({B, T, d_inner}) * p["norm_weight"]).matmul(p["out_proj.weight"].t());
}

TEST(Mamba2Layer, ForwardMatchesTheDefinitionWithConv1dAndTheTokenLoop) {
  torch::manual_seed(0);
  auto layer = build("{d_state: 4, head_dim: 8, ngroups: 2, chunk: 3}");
  layer->to(torch::kDouble);
  auto x = torch::randn({2, 10, 32}, torch::kDouble);
  auto expected = reference_forward(*layer, x, 4, 8, 2);
  EXPECT_LT((layer->forward(x) - expected).abs().max().item<double>(), 1e-12);
}

TEST(Mamba2Layer, DecodingMatchesTheForwardForOtherKernelsAndGroups) {
  for (const std::string params : {"{d_state: 4, head_dim: 8, conv_kernel: 1, chunk: 5}",
                                   "{d_state: 4, head_dim: 16, conv_kernel: 6, ngroups: 4, chunk: 4}",
                                   "{d_state: 3, head_dim: 8, expand: 1, chunk: 64}"}) {
    torch::manual_seed(1);
    auto layer = build(params);
    layer->to(torch::kDouble);
    EXPECT_LT(decode_error(*layer, torch::randn({2, 13, 32}, torch::kDouble)), 1e-10) << params;
  }
}

TEST(Mamba2Layer, DecodingInFloat32StaysCloseToTheForward) {
  torch::manual_seed(2);
  auto layer = build("{d_state: 8, head_dim: 16, chunk: 8}");
  EXPECT_LT(decode_error(*layer, torch::randn({1, 40, 32})), 1e-4);
}

TEST(Mamba2Layer, InputGradientsMatchFiniteDifferences) {
  torch::manual_seed(3);
  auto layer = build("{d_state: 2, head_dim: 4, chunk: 2, conv_kernel: 3}", 4);
  layer->to(torch::kDouble);
  auto f = [&](const std::vector<at::Tensor>& in) { return layer->forward(in[0]); };
  EXPECT_TRUE(bla::testing::gradients_match(f, {torch::randn({1, 5, 4}, torch::kDouble)}));
}

TEST(Mamba2Layer, StepSizeStartsLogUniformInsideDtMinDtMax) {
  torch::manual_seed(4);
  auto layer = std::dynamic_pointer_cast<Mamba2Layer>(build("{head_dim: 4, dt_min: 0.002, dt_max: 0.05}", 256));
  ASSERT_TRUE(layer);
  auto dt = layer->initial_dt().to(torch::kDouble);
  ASSERT_EQ(dt.numel(), 128);
  EXPECT_GE(dt.min().item<double>(), 0.002 * (1 - 1e-5));
  EXPECT_LE(dt.max().item<double>(), 0.05 * (1 + 1e-5));
  // Log-uniform: log dt spreads evenly, its mean near the middle of the log range.
  const double middle = 0.5 * (std::log(0.002) + std::log(0.05));
  EXPECT_NEAR(dt.log().mean().item<double>(), middle, 0.25);
  EXPECT_GT(dt.max().item<double>() / dt.min().item<double>(), 10.0);

  auto fixed = std::dynamic_pointer_cast<Mamba2Layer>(build("{head_dim: 8, dt_min: 0.01, dt_max: 0.01}"));
  EXPECT_LT((fixed->initial_dt().to(torch::kDouble) - 0.01).abs().max().item<double>(), 1e-8);
}

TEST(Mamba2Layer, DecayRatesStartBetweenMinus16AndMinus1) {
  torch::manual_seed(5);
  auto layer = std::dynamic_pointer_cast<Mamba2Layer>(build("{head_dim: 2}", 256));
  auto A = layer->decay_rates();
  ASSERT_EQ(A.numel(), 256);
  EXPECT_GE(A.min().item<double>(), -16.0 - 1e-5);
  EXPECT_LE(A.max().item<double>(), -1.0 + 1e-5);
  EXPECT_GT(A.max().item<double>() - A.min().item<double>(), 10.0);
  EXPECT_TRUE(torch::equal(layer->named_parameters()["D"], torch::ones({256})));
}

TEST(Mamba2Layer, StateSizeFollowsTheConvention) {
  // d_model 64, expand 2: d_inner 128, P 64 -> H 2, N 64: 2*64*64 + 3*(128 + 2*64).
  EXPECT_EQ(build("{}", 64)->state_numel(1000), 2 * 64 * 64 + 3 * (128 + 2 * 64));
  EXPECT_EQ(build("{ngroups: 2, conv_kernel: 2}", 64)->state_numel(1), 2 * 64 * 64 + 1 * (128 + 2 * 2 * 64));
  // And it counts exactly what the decode state holds.
  auto layer = build("{d_state: 8, head_dim: 16, ngroups: 2, conv_kernel: 5}");
  auto state = layer->initial_state(1, torch::TensorOptions().dtype(torch::kFloat));
  EXPECT_EQ(state.bytes(), 4 * layer->state_numel(7));
  EXPECT_EQ(layer->state_numel(7), 4 * 16 * 8 + 4 * (64 + 2 * 2 * 8));
}

TEST(Mamba2Layer, DescribeNamesTheShape) {
  EXPECT_EQ(build("{d_state: 8, head_dim: 16}")->describe(),
            "mamba2(d_inner=64, heads=4, head_dim=16, d_state=8, ngroups=1, conv_kernel=4, chunk=64)");
}

TEST(Mamba2Layer, BadParametersNameTheKeyAndTheFix) {
  EXPECT_EQ(build_error("{head_dim: 48}"),
            "m.yaml, line 6: model.mixers.mamba2.head_dim: head_dim (48) must divide d_inner = expand * d_model (64); "
            "pick a divisor of 64");
  EXPECT_EQ(build_error("{head_dim: 16, ngroups: 3}"),
            "m.yaml, line 6: model.mixers.mamba2.ngroups: ngroups (3) must divide the head count d_inner / head_dim "
            "(4); pick a divisor of 4");
  EXPECT_EQ(build_error("{head_dim: 16, dt_min: 0.5, dt_max: 0.1}"),
            "m.yaml, line 6: model.mixers.mamba2.dt_min: dt_min (0.5) must be <= dt_max (0.1); lower dt_min or raise "
            "dt_max");
  EXPECT_NE(build_error("{head_dim: 16, d_conv: 4}").find("model.mixers.mamba2.d_conv"), std::string::npos);
}

}  // namespace
