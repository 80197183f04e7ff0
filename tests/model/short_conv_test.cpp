// The short causal convolution (mixers/common/short_conv.h) and the block
// options Zoology's MQAR models use (model.short_conv, model.mlp: none): the
// convolution against LibTorch's grouped conv1d in float64, and a model with
// both decoding token by token as its full forward runs, for every mixer.
#include "bla/config/config.h"
#include "bla/mixers/common/short_conv.h"
#include "bla/model/lm.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace {

using bla::testing::config_error_of;
using bla::testing::tiny_mqar_config;

bla::config::Config zoology_block_config(const std::string& mixer, int64_t kernel) {
  const auto& params = bla::testing::small_mixer_params().at(mixer);
  return bla::config::parse_config(
      tiny_mqar_config(mixer, "  mixers: {" + mixer + ": " + params + "}\n  mlp: none\n  short_conv: " +
                                  std::to_string(kernel) + "\n"),
      "zoology.yaml");
}

}  // namespace

TEST(ShortConv, EqualsLibTorchsGroupedConv1dInFloat64) {
  for (int64_t kernel : {1, 3, 4}) {
    torch::manual_seed(kernel);
    bla::mixers::ShortConv conv(5, kernel);
    conv->to(torch::kDouble);
    auto x = torch::randn({2, 9, 5}, torch::kDouble);
    auto params = conv->named_parameters();
    // conv1d pads both ends; the first T outputs are the causal ones.
    auto reference = torch::conv1d(x.transpose(1, 2), params["weight"].unsqueeze(1), params["bias"], 1, kernel - 1, 1, 5)
                         .narrow(2, 0, 9)
                         .transpose(1, 2);
    auto y = conv->forward(x);
    EXPECT_LT((y - reference).abs().max().item<double>(), 1e-13) << "kernel " << kernel;
    // Decoding one token at a time gives the same outputs, bit for bit.
    auto cache = conv->initial_cache(2, torch::TensorOptions().dtype(torch::kDouble));
    ASSERT_EQ(cache.sizes(), (std::vector<int64_t>{2, kernel - 1, 5}));
    for (int64_t t = 0; t < 9; ++t) {
      EXPECT_TRUE(torch::equal(conv->step(x.select(1, t), cache), y.select(1, t))) << "kernel " << kernel << " t " << t;
    }
    EXPECT_EQ(conv->cache_numel(), (kernel - 1) * 5);
  }
}

class ZoologyBlockEveryMixer : public ::testing::TestWithParam<std::string> {};

TEST_P(ZoologyBlockEveryMixer, DecodesLikeItsForwardAndCountsTheConvolutionInItsState) {
  auto config = zoology_block_config(GetParam(), 3);
  auto plain = bla::config::parse_config(
      tiny_mqar_config(GetParam(), "  mixers: {" + GetParam() + ": " + bla::testing::small_mixer_params().at(GetParam()) +
                                       "}\n  mlp: none\n"),
      "plain.yaml");
  const int64_t vocab = 23, T = 11, d = 32;
  torch::manual_seed(0);
  bla::model::LanguageModel model(config.model, vocab, 64);
  bla::model::LanguageModel without_conv(plain.model, vocab, 64);
  // Per layer: the mixer's state plus the last K-1 = 2 normalised inputs; weights d*K and a bias d.
  for (int64_t layer = 0; layer < model->num_layers(); ++layer) {
    EXPECT_EQ(model->state_numel(layer, T), without_conv->state_numel(layer, T) + 2 * d);
  }
  EXPECT_EQ(model->num_parameters(), without_conv->num_parameters() + model->num_layers() * (d * 3 + d));
  for (const auto& item : model->named_parameters()) EXPECT_EQ(item.key().find("mlp"), std::string::npos) << item.key();

  model->to(torch::kDouble);
  model->eval();
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.05);
  auto tokens = torch::randint(vocab, {2, T}, torch::kLong);
  auto full = model->forward(tokens);
  auto state = model->initial_state(2, torch::TensorOptions().dtype(torch::kDouble));
  for (int64_t t = 0; t < T; ++t) {
    auto logits = model->step(tokens.select(1, t), state);
    EXPECT_LT((logits - full.select(1, t)).abs().max().item<double>(), 1e-9) << GetParam() << " t " << t;
  }
  // Causal: changing the last tokens leaves the earlier logits alone.
  auto changed = tokens.clone();
  changed.narrow(1, 7, T - 7).fill_(5);
  EXPECT_LT((model->forward(changed).narrow(1, 0, 7) - full.narrow(1, 0, 7)).abs().max().item<double>(), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Mixers, ZoologyBlockEveryMixer, ::testing::Values("attention", "swa", "bla", "gla", "mamba2"));

TEST(ZoologyBlockConfig, AKernelOutOfRangeIsRefusedNamingTheKey) {
  EXPECT_EQ(config_error_of(tiny_mqar_config("attention", "  short_conv: -1\n")),
            "cfg.yaml, line 7: model.short_conv: value -1 is out of range [0, 64]");
}
