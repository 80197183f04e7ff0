// The GSA layer: its forward against the token-loop reference op with the
// layer's own projections and feature map, the forget gate (<= 0,
// normaliser), decoding with other slot counts, the state-size formula
// (docs/mixers.md) and config errors.
#include "bla/config/config.h"
#include "bla/mixers/common/heads.h"
#include "bla/mixers/gsa/gsa_layer.h"
#include "bla/ops/gsa/gsa.h"

#include "support/finite_difference.h"
#include "support/mixer_builder.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace {

using bla::mixers::GsaLayer;
using bla::mixers::MixerImpl;
using bla::testing::decode_error;

std::shared_ptr<MixerImpl> build(const std::string& params) { return bla::testing::build_mixer("gsa", params, "s.yaml"); }

std::string build_error(const std::string& params) {
  return bla::testing::mixer_build_error("gsa", params, "s.yaml");
}

TEST(GsaLayer, ForwardMatchesTheReferenceOpWithTheLayersProjections) {
  torch::manual_seed(0);
  auto layer = build("{slots: 5, chunk: 4}");
  layer->to(torch::kDouble);
  auto p = layer->named_parameters();
  auto x = torch::randn({2, 11, 32}, torch::kDouble);
  auto heads = [&](const char* name) { return bla::mixers::split_heads(x.matmul(p[name].t()), 2); };
  auto f = torch::log_sigmoid(heads("forget_proj.weight")) / 8.0;  // (B, T, H, m)
  auto o = bla::ops::gated_slot_attention_reference(torch::silu(heads("q_proj.weight")),
                                                    torch::silu(heads("k_proj.weight")), heads("v_proj.weight"), f,
                                                    {64, 1.0, 16});
  auto activated = torch::silu(o);
  auto normed = activated / torch::sqrt(activated.pow(2).mean(-1, true) + 1e-5) * p["norm_weight"];
  auto expected = bla::mixers::merge_heads(normed).matmul(p["o_proj.weight"].t());
  EXPECT_LT((layer->forward(x) - expected).abs().max().item<double>(), 1e-12);
}

TEST(GsaLayer, DecodingMatchesTheForwardForOtherShapes) {
  for (const std::string params : {"{slots: 1, chunk: 16}", "{slots: 7, heads: 4, chunk: 5}", "{heads: 1, chunk: 32}"}) {
    torch::manual_seed(1);
    auto layer = build(params);
    layer->to(torch::kDouble);
    EXPECT_LT(decode_error(*layer, torch::randn({2, 19, 32}, torch::kDouble)), 1e-10) << params;
  }
}

TEST(GsaLayer, InputGradientsMatchFiniteDifferences) {
  torch::manual_seed(2);
  auto layer = build("{slots: 3, chunk: 2, heads: 4}");
  layer->to(torch::kDouble);
  auto f = [&](const std::vector<at::Tensor>& in) { return layer->forward(in[0]); };
  EXPECT_TRUE(bla::testing::gradients_match(f, {torch::randn({1, 5, 32}, torch::kDouble)}));
}

TEST(GsaLayer, ForgetGateIsNeverPositiveAndDividedByTheNormaliser) {
  torch::manual_seed(3);
  auto layer = std::dynamic_pointer_cast<GsaLayer>(build("{slots: 6, gate_normalizer: 2}"));
  ASSERT_TRUE(layer);
  auto f = layer->log_forget(1000.0 * torch::randn({3, 5, 32}));
  EXPECT_LE(f.max().item<double>(), 0.0);
  EXPECT_LT(f.min().item<double>(), -1.0);
  auto at_zero = layer->log_forget(torch::zeros({1, 32}));
  ASSERT_EQ(at_zero.size(-1), 2 * 6);
  EXPECT_LT((at_zero - std::log(0.5) / 2.0).abs().max().item<double>(), 1e-7);
}

TEST(GsaLayer, StateSizeFollowsTheConvention) {
  auto layer = build("{}");  // m = 64, d_model 32: 2 * m * d_model
  EXPECT_EQ(layer->state_numel(5000), 2 * 64 * 32);
  EXPECT_EQ(build("{slots: 4, heads: 4}")->state_numel(1), 4 * 4 * (8 + 8));
  auto state = layer->initial_state(1, torch::TensorOptions().dtype(torch::kFloat));
  EXPECT_EQ(state.bytes(), 4 * layer->state_numel(1));
  EXPECT_EQ(layer->describe(), "gsa(heads=2, slots=64, head_dim=16, chunk=64)");
}

TEST(GsaLayer, BadParametersNameTheKeyAndTheFix) {
  EXPECT_EQ(build_error("{heads: 3}"),
            "s.yaml, line 6: model.mixers.gsa.heads: d_model (32) is not divisible by heads (3); pick a divisor of "
            "d_model");
  EXPECT_EQ(build_error("{chunk: 40}"),
            "s.yaml, line 6: model.mixers.gsa.chunk: chunk (40) must be <= 16 or a multiple of 16; use e.g. 64");
  EXPECT_NE(build_error("{slot: 4}").find("model.mixers.gsa.slot"), std::string::npos);
}

}  // namespace
