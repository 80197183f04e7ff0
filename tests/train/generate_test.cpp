// Decoding a whole model token by token (LanguageModelImpl::step with each
// mixer's recurrent state) reproduces the full-sequence forward, for every
// registered mixer; sampling and restoring a run from its checkpoint.
#include "bla/config/config.h"
#include "bla/mixers/mixer.h"
#include "bla/model/lm.h"
#include "bla/train/checkpoint.h"
#include "bla/train/evaluate.h"
#include "bla/train/decode.h"
#include "bla/train/restore.h"
#include "bla/train/trainer.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace {

using bla::mixers::MixerRegistry;

// Small parameters per mixer type; a type not listed there is skipped with a message.
const std::map<std::string, std::string>& small_params() { return bla::testing::small_mixer_params(); }

bla::config::Config model_config(const std::string& mixer, const std::string& params) {
  return bla::config::parse_config(
      bla::testing::tiny_mqar_config(mixer, "  mixers: {" + mixer + ": " + params + "}\n"), "generate.yaml");
}

class GenerateEveryMixer : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerateEveryMixer, StepByStepDecodingReproducesTheFullForward) {
  auto it = small_params().find(GetParam());
  if (it == small_params().end()) {
    GTEST_SKIP() << "no small parameters for mixer type '" << GetParam() << "': add them to small_params()";
  }
  auto config = model_config(GetParam(), it->second);
  torch::manual_seed(0);
  const int64_t vocab = 23, T = 13;
  bla::model::LanguageModel model(config.model, vocab, 64);
  config.model.mixers.front().params->finish();
  model->to(torch::kDouble);
  model->eval();
  torch::NoGradGuard no_grad;
  // Non-zero gains so every path (norms, MLP, tied head) carries signal.
  for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.05);
  auto tokens = torch::randint(vocab, {2, T}, torch::kLong);
  auto full = model->forward(tokens);  // (2, T, vocab)
  auto state = model->initial_state(2, torch::TensorOptions().dtype(torch::kDouble));
  double worst = 0;
  for (int64_t t = 0; t < T; ++t) {
    auto logits = model->step(tokens.select(1, t), state);
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, vocab}));
    worst = std::max(worst, (logits - full.select(1, t)).abs().max().item<double>());
  }
  EXPECT_LT(worst, 1e-9) << GetParam();
  EXPECT_GT(full.abs().max().item<double>(), 1e-3) << "the logits are not trivially zero";
  EXPECT_GT(state.bytes(), 0);
  for (const auto& layer : state.layers) EXPECT_EQ(layer.position, T);
}

INSTANTIATE_TEST_SUITE_P(Registry, GenerateEveryMixer, ::testing::ValuesIn(MixerRegistry::instance().names()),
                         [](const auto& info) { return info.param; });

bla::model::LanguageModel small_model(int64_t vocab) {
  auto config = model_config("swa", "{window: 4}");
  torch::manual_seed(1);
  bla::model::LanguageModel model(config.model, vocab, 64);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.3);  // peaked, varied logits
  return model;
}

TEST(Generate, GreedyDecodingFollowsTheArgmaxOfTheFullForward) {
  auto model = small_model(17);
  model->to(torch::kDouble);
  bla::train::SamplingOptions greedy;
  greedy.temperature = 0;
  std::vector<int64_t> seen;
  auto result = bla::train::decode(*model, {3, 9, 1}, 8, greedy, torch::kCPU, [&](int64_t t) { seen.push_back(t); });
  ASSERT_EQ(result.tokens.size(), 8u);
  EXPECT_EQ(seen, result.tokens) << "tokens are reported as they are chosen";
  std::vector<int64_t> sequence{3, 9, 1};
  sequence.insert(sequence.end(), result.tokens.begin(), result.tokens.end());
  torch::NoGradGuard no_grad;
  auto logits = model->forward(torch::tensor(sequence).view({1, -1}))[0];
  for (size_t i = 0; i < result.tokens.size(); ++i) {
    EXPECT_EQ(logits[static_cast<int64_t>(2 + i)].argmax().item<int64_t>(), result.tokens[i]) << "token " << i;
  }
  // SWA keeps a window of 4 tokens per layer: K and V of d_model 32, float64.
  EXPECT_EQ(result.state_bytes, 2 * (2 * 4 * 32 * 8)) << "bounded: independent of the 11 tokens seen";
  EXPECT_EQ(result.layer_bytes, (std::vector<int64_t>{2 * 4 * 32 * 8, 2 * 4 * 32 * 8}));
}

TEST(Generate, SamplingIsSeededAndTopOneIsGreedy) {
  auto model = small_model(17);
  bla::train::SamplingOptions options;
  options.temperature = 1.5;
  options.seed = 11;
  auto a = bla::train::decode(*model, {2, 5}, 12, options, torch::kCPU);
  auto b = bla::train::decode(*model, {2, 5}, 12, options, torch::kCPU);
  EXPECT_EQ(a.tokens, b.tokens);
  options.seed = 12;
  EXPECT_NE(bla::train::decode(*model, {2, 5}, 12, options, torch::kCPU).tokens, a.tokens);
  options.top_k = 1;
  bla::train::SamplingOptions greedy;
  greedy.temperature = 0;
  EXPECT_EQ(bla::train::decode(*model, {2, 5}, 12, options, torch::kCPU).tokens,
            bla::train::decode(*model, {2, 5}, 12, greedy, torch::kCPU).tokens);
}

TEST(Generate, SampleTokenFollowsTheTemperedTopKDistribution) {
  auto logits = torch::tensor({1.0, 3.0, 0.0, 2.0, 3.0}, torch::kDouble);
  bla::train::SamplingOptions options;
  options.temperature = 2.0;
  options.top_k = 3;  // ids 1, 4 (logit 3) and 3 (logit 2)
  std::mt19937_64 rng(5);
  const int n = 40000;
  std::vector<int> counts(5, 0);
  for (int i = 0; i < n; ++i) counts[static_cast<size_t>(bla::train::sample_token(logits, options, rng))]++;
  const double z = 2 * std::exp(1.5) + std::exp(1.0);
  EXPECT_EQ(counts[0] + counts[2], 0) << "outside the top 3";
  EXPECT_NEAR(counts[1] / double(n), std::exp(1.5) / z, 0.01);
  EXPECT_NEAR(counts[4] / double(n), std::exp(1.5) / z, 0.01);
  EXPECT_NEAR(counts[3] / double(n), std::exp(1.0) / z, 0.01);
  options.temperature = 0;
  EXPECT_EQ(bla::train::sample_token(logits, options, rng), 1) << "greedy takes the first maximum";
}

TEST(Generate, PromptsAndOptionsAreChecked) {
  EXPECT_EQ(bla::train::parse_token_ids(" 3 17\t5\n", 20), (std::vector<int64_t>{3, 17, 5}));
  auto rejects = [](const std::string& text, const std::string& message) {
    try {
      bla::train::parse_token_ids(text, 20);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), message);
    }
  };
  rejects("3 hello", "--prompt: 'hello' is not a token id; give white-space separated integers (text prompts need a "
                     "checkpoint of data.task: text)");
  rejects("3 7x", "--prompt: '7x' is not a token id; give white-space separated integers (text prompts need a "
                  "checkpoint of data.task: text)");
  rejects("3 20", "--prompt: token id 20 is outside the model's vocabulary [0, 20)");
  rejects("-1", "--prompt: token id -1 is outside the model's vocabulary [0, 20)");
  rejects("  ", "--prompt: give at least one token id, e.g. --prompt \"1 2 3\"");
  bla::train::SamplingOptions bad;
  bad.temperature = -0.5;
  try {
    bad.validate();
    ADD_FAILURE() << "accepted temperature -0.5";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "--temperature (-0.5) must be a finite number >= 0 (0: greedy)");
  }
  bad.temperature = 1;
  bad.top_k = -2;
  try {
    bad.validate();
    ADD_FAILURE() << "accepted top_k -2";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "--top-k (-2) must be >= 0 (0: the whole vocabulary)");
  }
}

TEST(GenerateRestore, ACheckpointRestoresTheRunsModelAndTask) {
  bla::testing::TempDir tmp;
  auto config = bla::config::parse_config(bla::testing::tiny_mqar_config("[swa, attention]", "  mixers: {swa: {window: 8}}\n"),
                                          "tiny.yaml", {"train.steps=3", "train.checkpoint_every=3", "run.device=cpu"});
  bla::train::RunOptions options;
  options.run_dir = tmp / "run";
  options.quiet = true;
  auto summary = bla::train::train(config, options);
  const std::string checkpoint = tmp / "run/checkpoints/step-00000003.ckpt";
  ASSERT_TRUE(bla::util::path_exists(checkpoint));

  auto run = bla::train::restore_checkpoint(checkpoint);
  EXPECT_EQ(run.task->name(), "mqar");
  EXPECT_EQ(run.vocab_size, 64);
  EXPECT_EQ(run.meta.at("step").get<int64_t>(), 3);
  EXPECT_FALSE(run.model->is_training());
  EXPECT_EQ(run.model->mixer(0).describe().rfind("swa", 0), 0u) << run.model->mixer(0).describe();
  // The trainer's final evaluation, reproduced from the checkpoint alone.
  bla::train::EvalOptions eval;
  eval.max_examples = config.train.eval_examples;
  eval.batch_size = config.train.batch_size;
  auto metrics = bla::train::evaluate(*run.model, *run.task, bla::tasks::Split::kTest, run.device, eval);
  EXPECT_DOUBLE_EQ(metrics.at("accuracy"), summary["test"]["accuracy"].get<double>());
  EXPECT_NEAR(metrics.at("loss"), summary["test"]["loss"].get<double>(), 1e-6);
  EXPECT_EQ(bla::train::state_summary(*run.model, 32), summary["state"]);

  // Overrides reach the task; a model override that changes the weights' shapes is refused.
  auto fewer = bla::train::restore_checkpoint(checkpoint, {{"data.test_examples=5"}});
  EXPECT_EQ(fewer.task->num_examples(bla::tasks::Split::kTest), 5);
  EXPECT_THROW(bla::train::restore_checkpoint(checkpoint, {{"model.d_model=16"}}), bla::train::CheckpointError);
  auto architecture = bla::train::describe_architecture(run);
  EXPECT_EQ(architecture["layer_mixers"][0]["type"], "swa");
  EXPECT_EQ(architecture["layer_mixers"][0]["params"]["window"], 8);
  EXPECT_EQ(architecture["layer_mixers"][1]["type"], "attention");
  EXPECT_EQ(architecture["vocab_size"], 64);
  EXPECT_EQ(architecture["task"]["task"], "mqar");
  EXPECT_EQ(architecture["task"]["num_kv_pairs"], 4);
}

}  // namespace
