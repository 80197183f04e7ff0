// The GatedFWA layer: its forward against the one-query-at-a-time reference
// op with the layer's own projections, the gate (<= 0, its initial decays),
// decoding past several window wraps, the state-size formula (docs/mixers.md) and
// config errors.
#include "bla/config/config.h"
#include "bla/mixers/common/heads.h"
#include "bla/mixers/gatedfwa/gatedfwa_layer.h"
#include "bla/ops/gatedfwa/gatedfwa.h"

#include "support/finite_difference.h"
#include "support/mixer_builder.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace {

using bla::mixers::GatedFwaLayer;
using bla::mixers::MixerImpl;
using bla::testing::decode_error;

// The layer as the registry builds it from `model.mixers.gatedfwa: <params>`
// (d_model 32, heads 2 unless the params say otherwise).
std::shared_ptr<MixerImpl> build(const std::string& params) { return bla::testing::build_mixer("gatedfwa", params, "g.yaml"); }

std::string build_error(const std::string& params) {
  return bla::testing::mixer_build_error("gatedfwa", params, "g.yaml");
}

TEST(GatedFwaLayer, ForwardMatchesTheReferenceOpWithTheLayersProjections) {
  torch::manual_seed(0);
  auto layer = build("{window: 4, block: 3}");
  layer->to(torch::kDouble);
  auto p = layer->named_parameters();
  auto x = torch::randn({2, 11, 32}, torch::kDouble);
  auto heads = [&](const char* name) { return bla::mixers::split_heads(x.matmul(p[name].t()), 2); };
  auto q = bla::mixers::apply_rotary(heads("q_proj.weight"), 0, 10000.0);
  auto k = bla::mixers::apply_rotary(heads("k_proj.weight"), 0, 10000.0);
  auto g = torch::log_sigmoid(x.matmul(p["gate_proj.weight"].t()) + p["gate_proj.bias"]);
  auto o = bla::ops::gated_window_attention_reference(q, k, heads("v_proj.weight"), g, {4, 0.0, 64});
  auto expected = bla::mixers::merge_heads(o).matmul(p["o_proj.weight"].t());
  EXPECT_LT((layer->forward(x) - expected).abs().max().item<double>(), 1e-12);
}

TEST(GatedFwaLayer, DecodingMatchesTheForwardAcrossManyWindowWraps) {
  for (const std::string params : {"{window: 3, rope: false}", "{window: 7, heads: 4, head_dim: 6, block: 5}",
                                   "{window: 1}"}) {
    torch::manual_seed(1);
    auto layer = build(params);
    layer->to(torch::kDouble);
    EXPECT_LT(decode_error(*layer, torch::randn({2, 23, 32}, torch::kDouble)), 1e-10) << params;
  }
}

TEST(GatedFwaLayer, InputGradientsMatchFiniteDifferences) {
  torch::manual_seed(2);
  auto layer = build("{window: 3, heads: 1, head_dim: 4, block: 2}");
  layer->to(torch::kDouble);
  auto f = [&](const std::vector<at::Tensor>& in) { return layer->forward(in[0]); };
  EXPECT_TRUE(bla::testing::gradients_match(f, {torch::randn({1, 6, 32}, torch::kDouble)}));
}

TEST(GatedFwaLayer, GateIsNeverPositiveAndStartsAtLogSpacedDecays) {
  torch::manual_seed(3);
  auto layer = std::dynamic_pointer_cast<GatedFwaLayer>(
      build("{window: 8, heads: 4, head_dim: 8, gate_init_min: 0.01, gate_init_max: 1.0}"));
  ASSERT_TRUE(layer);
  auto big = layer->log_gate(100.0 * torch::randn({3, 7, 32}));
  EXPECT_LE(big.max().item<double>(), 0.0);
  EXPECT_LT(big.min().item<double>(), -1.0);  // the input does move the gate
  // Zero input: -g = 0.01, 0.1^(4/3)..., log-spaced from gate_init_min to gate_init_max over the heads.
  auto decay = -layer->log_gate(torch::zeros({1, 32})).squeeze(0).to(torch::kDouble);
  auto expected = torch::tensor({0.01, std::pow(10.0, -4.0 / 3.0), std::pow(10.0, -2.0 / 3.0), 1.0}, torch::kDouble);
  EXPECT_LT((decay - expected).abs().max().item<double>(), 1e-6) << decay;
  auto one_head = std::dynamic_pointer_cast<GatedFwaLayer>(build("{window: 8, heads: 1}"));
  EXPECT_NEAR(-one_head->log_gate(torch::zeros({1, 32})).item<double>(), 0.01, 1e-7);  // sqrt(0.001 * 0.1)
}

TEST(GatedFwaLayer, StateSizeFollowsTheConvention) {
  auto layer = build("{window: 16}");
  // Full window: 2 * W * d_model + W * H.
  EXPECT_EQ(layer->state_numel(100), 2 * 16 * 32 + 16 * 2);
  EXPECT_EQ(layer->state_numel(16), 2 * 16 * 32 + 16 * 2);
  EXPECT_EQ(layer->state_numel(5), 2 * 5 * 32 + 5 * 2);  // as SWA: a prompt shorter than the window
  auto state = layer->initial_state(1, torch::TensorOptions().dtype(torch::kFloat));
  EXPECT_EQ(state.bytes(), 4 * layer->state_numel(16));
  EXPECT_EQ(layer->describe(), "gatedfwa(window=16, heads=2, head_dim=16, rope=on)");
}

TEST(GatedFwaLayer, BadParametersNameTheKeyAndTheFix) {
  EXPECT_NE(build_error("{}").find("model.mixers.gatedfwa.window"), std::string::npos) << build_error("{}");
  EXPECT_EQ(build_error("{window: 4, heads: 4, head_dim: 5}"),
            "g.yaml, line 6: model.mixers.gatedfwa.rope: rotary embedding needs an even head_dim; set rope: false");
  EXPECT_EQ(build_error("{window: 4, gate_init_min: 0.5, gate_init_max: 0.2}"),
            "g.yaml, line 6: model.mixers.gatedfwa.gate_init_min: gate_init_min (0.5) must be <= gate_init_max (0.2); "
            "lower gate_init_min or raise gate_init_max");
  EXPECT_EQ(build("{window: 4, heads: 4, head_dim: 5, rope: false}")->state_numel(9), 4 * 4 * (5 + 5 + 1));
}

}  // namespace
