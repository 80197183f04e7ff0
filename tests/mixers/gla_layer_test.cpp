// The GLA layer: its forward against the token-loop reference op with the
// layer's own projections, the low-rank gate (<= 0, normaliser), chunk
// independence, the state-size formula (docs/mixers.md) and config errors.
#include "bla/config/config.h"
#include "bla/mixers/common/heads.h"
#include "bla/mixers/gla/gla_layer.h"
#include "bla/ops/gla/gla.h"

#include "support/finite_difference.h"
#include "support/mixer_builder.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace {

using bla::mixers::GlaLayer;
using bla::mixers::MixerImpl;

std::shared_ptr<MixerImpl> build(const std::string& params) { return bla::testing::build_mixer("gla", params, "l.yaml"); }

std::string build_error(const std::string& params) {
  return bla::testing::mixer_build_error("gla", params, "l.yaml");
}

TEST(GlaLayer, ForwardMatchesTheReferenceOpWithTheLayersProjections) {
  torch::manual_seed(0);
  auto layer = build("{chunk: 4, heads: 2}");
  layer->to(torch::kDouble);
  auto p = layer->named_parameters();
  auto x = torch::randn({2, 11, 32}, torch::kDouble);
  auto proj = [&](const char* name) { return x.matmul(p[name].t()); };
  auto heads = [&](const char* name) { return bla::mixers::split_heads(proj(name), 2); };
  auto g = torch::log_sigmoid(proj("gate_down.weight").matmul(p["gate_up.weight"].t()) + p["gate_up.bias"]) / 16.0;
  ASSERT_EQ(g.size(-1), 16);  // expand_k 0.5: d_k 8 per head
  auto o = bla::ops::gated_linear_attention_reference(heads("q_proj.weight"), heads("k_proj.weight"),
                                                      heads("v_proj.weight"), bla::mixers::split_heads(g, 2));
  auto normed = o / torch::sqrt(o.pow(2).mean(-1, true) + 1e-5) * p["norm_weight"];
  auto expected = (bla::mixers::merge_heads(normed) * torch::silu(proj("output_gate.weight"))).matmul(p["o_proj.weight"].t());
  EXPECT_LT((layer->forward(x) - expected).abs().max().item<double>(), 1e-12);
}

TEST(GlaLayer, ChunkLengthDoesNotChangeTheOutputAndDecodingMatches) {
  torch::manual_seed(1);
  auto x = torch::randn({2, 37, 32}, torch::kDouble);
  torch::manual_seed(2);
  auto small = build("{chunk: 3, expand_k: 1, expand_v: 0.5}");
  torch::manual_seed(2);
  auto large = build("{chunk: 32, expand_k: 1, expand_v: 0.5}");
  small->to(torch::kDouble);
  large->to(torch::kDouble);
  auto full = small->forward(x);
  EXPECT_LT((full - large->forward(x)).abs().max().item<double>(), 1e-12);
  torch::NoGradGuard no_grad;
  auto state = large->initial_state(2, x.options());
  for (int64_t t = 0; t < x.size(1); ++t) {
    EXPECT_LT((large->step(x.select(1, t), state) - full.select(1, t)).abs().max().item<double>(), 1e-10) << t;
  }
}

TEST(GlaLayer, InputGradientsMatchFiniteDifferences) {
  torch::manual_seed(3);
  auto layer = build("{chunk: 2, heads: 4, gate_rank: 2}");
  layer->to(torch::kDouble);
  auto f = [&](const std::vector<at::Tensor>& in) { return layer->forward(in[0]); };
  EXPECT_TRUE(bla::testing::gradients_match(f, {torch::randn({1, 5, 32}, torch::kDouble)}));
}

TEST(GlaLayer, DecayIsNeverPositiveAndDividedByTheNormaliser) {
  torch::manual_seed(4);
  auto layer = std::dynamic_pointer_cast<GlaLayer>(build("{gate_normalizer: 4}"));
  ASSERT_TRUE(layer);
  auto g = layer->log_decay(1000.0 * torch::randn({3, 5, 32}));
  EXPECT_LE(g.max().item<double>(), 0.0);
  EXPECT_LT(g.min().item<double>(), -1.0);
  // Zero input, zero bias: logsigmoid(0) / 4.
  auto at_zero = layer->log_decay(torch::zeros({1, 32}));
  EXPECT_LT((at_zero - std::log(0.5) / 4.0).abs().max().item<double>(), 1e-7);
  EXPECT_EQ(at_zero.size(-1), 16);
}

TEST(GlaLayer, StateSizeFollowsTheConvention) {
  // d_model 32, heads 2, expand_k 0.5, expand_v 1: d_k 8, d_v 16.
  auto layer = build("{}");
  EXPECT_EQ(layer->state_numel(1000), 2 * 8 * 16);
  EXPECT_EQ(build("{heads: 4, expand_k: 1, expand_v: 2}")->state_numel(1), 4 * 8 * 16);
  auto state = layer->initial_state(1, torch::TensorOptions().dtype(torch::kFloat));
  EXPECT_EQ(state.bytes(), 4 * layer->state_numel(1));
  EXPECT_EQ(layer->describe(), "gla(heads=2, d_k=8, d_v=16, gate_rank=16, chunk=64)");
}

TEST(GlaLayer, BadParametersNameTheKeyAndTheFix) {
  EXPECT_EQ(build_error("{expand_k: 0.3}"),
            "l.yaml, line 6: model.mixers.gla.expand_k: expand_k * d_model (9.6) must be a whole multiple of heads (2); "
            "pick expand_k so that it is");
  EXPECT_EQ(build_error("{heads: 3}"),
            "l.yaml, line 6: model.mixers.gla.expand_k: expand_k * d_model (16) must be a whole multiple of heads (3); "
            "pick expand_k so that it is");
  EXPECT_EQ(build_error("{chunk: 24}"),
            "l.yaml, line 6: model.mixers.gla.chunk: chunk (24) must be <= 16 or a multiple of 16; use e.g. 64");
  EXPECT_NE(build_error("{expand_q: 1}").find("model.mixers.gla.expand_q"), std::string::npos);
}

}  // namespace
