// Precision of every mixer layer, one parameterised suite:
//   - T = 4096 in float32 against the same weights in float64: the chunked
//     forms' cumulative decays and operator powers stay bounded, so float32
//     loses nothing to overflow or cancellation over a long sequence (inputs
//     scaled by 3, so gates and scores reach their extremes);
//   - bf16 parameters and inputs (what CUDA autocast hands a layer): the mixed
//     dtypes inside (float32 gates, norms, decays, operators) go through, and
//     the output comes back in bf16 close to the float32 one.
#include "support/mixer_builder.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

namespace {

struct PrecisionCase {
  std::string name;         // test name suffix
  std::string type;         // model.mixers.<type>
  std::string long_params;  // for the T = 4096 comparison
  std::string bf16_params;  // for the bf16 comparison (T = 20)
};

class MixerPrecision : public ::testing::TestWithParam<PrecisionCase> {};

TEST_P(MixerPrecision, LongSequenceInFloat32MatchesFloat64) {
  const auto& c = GetParam();
  torch::manual_seed(7);
  auto layer = bla::testing::build_mixer(c.type, c.long_params, "p.yaml");
  auto x = 3.0 * torch::randn({1, 4096, 32});
  torch::NoGradGuard no_grad;
  auto y32 = layer->forward(x).to(torch::kDouble);
  layer->to(torch::kDouble);
  auto y64 = layer->forward(x.to(torch::kDouble));
  ASSERT_TRUE(torch::isfinite(y32).all().item<bool>());
  EXPECT_LT((y32 - y64).abs().max().item<double>(), 1e-5 * y64.abs().max().item<double>());
}

TEST_P(MixerPrecision, Bf16ForwardRunsAndStaysCloseToFloat32) {
  const auto& c = GetParam();
  torch::manual_seed(8);
  auto layer = bla::testing::build_mixer(c.type, c.bf16_params, "p.yaml");
  auto x = torch::randn({2, 20, 32});
  torch::NoGradGuard no_grad;
  auto y32 = layer->forward(x);
  layer->to(torch::kBFloat16);
  auto y16 = layer->forward(x.to(torch::kBFloat16));
  ASSERT_EQ(y16.scalar_type(), torch::kBFloat16);
  EXPECT_LT((y16.to(torch::kFloat) - y32).abs().max().item<double>(), 0.02 * y32.abs().max().item<double>());
}

INSTANTIATE_TEST_SUITE_P(
    EveryMixer, MixerPrecision,
    ::testing::Values(
        PrecisionCase{"attention", "attention", "{}", "{}"},
        PrecisionCase{"swa", "swa", "{window: 64}", "{window: 8}"},
        PrecisionCase{"bla", "bla", "{window: 256, slots: 32}", "{window: 8, slots: 4, chunk: 8}"},
        PrecisionCase{"gla", "gla", "{gate_normalizer: 1}", "{chunk: 8}"},
        PrecisionCase{"gsa", "gsa", "{slots: 16, gate_normalizer: 1}", "{slots: 8, chunk: 8}"},
        PrecisionCase{"mamba2", "mamba2", "{d_state: 8, head_dim: 16, chunk: 64}", "{d_state: 8, head_dim: 16, chunk: 8}"},
        PrecisionCase{"gatedfwa", "gatedfwa", "{window: 64, gate_init_min: 0.01, gate_init_max: 1.0}",
                      "{window: 8, block: 8}"}),
    [](const ::testing::TestParamInfo<PrecisionCase>& info) { return info.param.name; });

}  // namespace
