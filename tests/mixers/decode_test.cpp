// Every registered mixer: decoding token by token with its recurrent state
// reproduces the full-sequence forward, and the state stays bounded where the
// mixer promises it. Mixers added to the registry are picked up here.
#include "bla/config/config.h"
#include "bla/mixers/mixer.h"

#include "support/mixer_builder.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace {

using bla::mixers::MixerRegistry;

// Parameters that make each mixer small; unknown mixers get none.
std::string params_for(const std::string& type) {
  static const std::map<std::string, std::string> params = {
      {"swa", "{window: 5}"}, {"bla", "{window: 6, slots: 3, chunk: 4}"}, {"gatedfwa", "{window: 5}"},
      {"gsa", "{slots: 4, chunk: 4}"}, {"gla", "{chunk: 4}"}, {"mamba2", "{chunk: 4, d_state: 8, head_dim: 8}"}};
  auto it = params.find(type);
  return it == params.end() ? "{}" : it->second;
}

std::shared_ptr<bla::mixers::MixerImpl> make(const std::string& type) {
  return bla::testing::build_mixer(type, params_for(type), "decode.yaml");
}

class EveryMixer : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryMixer, DecodingReproducesTheFullForward) {
  torch::manual_seed(0);
  auto mixer = make(GetParam());
  mixer->to(torch::kDouble);
  const int64_t T = 11;
  auto x = torch::randn({2, T, 32}, torch::kDouble);
  auto full = mixer->forward(x);
  auto state = mixer->initial_state(2, torch::TensorOptions().dtype(torch::kDouble));
  for (int64_t t = 0; t < T; ++t) {
    auto y = mixer->step(x.select(1, t), state);
    EXPECT_LT((y - full.select(1, t)).abs().max().item<double>(), 1e-10) << GetParam() << " at t=" << t;
  }
  EXPECT_EQ(state.position, T);
}

TEST_P(EveryMixer, FullForwardIsCausal) {
  torch::manual_seed(1);
  auto mixer = make(GetParam());
  mixer->to(torch::kDouble);
  auto x = torch::randn({1, 12, 32}, torch::kDouble);
  auto y = mixer->forward(x);
  auto x2 = x.clone();
  x2.slice(1, 8).normal_();
  auto y2 = mixer->forward(x2);
  EXPECT_LT((y.slice(1, 0, 8) - y2.slice(1, 0, 8)).abs().max().item<double>(), 1e-12) << GetParam();
}

TEST_P(EveryMixer, StateIsBoundedUnlessTheMixerIsAttention) {
  auto mixer = make(GetParam());
  auto state = mixer->initial_state(1, torch::TensorOptions());
  torch::NoGradGuard no_grad;
  int64_t bytes_after_20 = 0;
  for (int64_t t = 0; t < 40; ++t) {
    mixer->step(torch::randn({1, 32}), state);
    if (t == 19) bytes_after_20 = state.bytes();
  }
  if (GetParam() == "attention") {
    EXPECT_GT(state.bytes(), bytes_after_20);
    EXPECT_EQ(mixer->state_numel(40), 2 * 40 * 32);
  } else {
    EXPECT_EQ(state.bytes(), bytes_after_20) << GetParam();
    EXPECT_EQ(mixer->state_numel(40), mixer->state_numel(4000)) << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryMixer, ::testing::ValuesIn(MixerRegistry::instance().names()),
                         [](const auto& info) { return info.param; });

}  // namespace
