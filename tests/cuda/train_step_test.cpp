// The fast training step on a GPU: the CUDA-graph-captured step against the
// eager one (whole runs, losses at every log step), PyTorch's fused AdamW
// against LibTorch's torch::optim::AdamW and its skip flag, and the fused LM
// head + cross-entropy in bf16 against full logits.
#include "bla/compat.h"
#include "bla/config/config.h"
#include "bla/model/head_loss.h"
#include "bla/tasks/task.h"
#include "bla/train/optimizer.h"
#include "bla/train/trainer.h"
#include "bla/util/files.h"
#include "support/twin_linears.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <string>
#include <vector>

namespace {

std::string tiny_cuda_config(const std::string& mixer) {
  std::string keys = mixer == "swa" ? "\n  mixers: {swa: {window: 16}}" : mixer == "bla" ? "\n  mixers: {bla: {window: 32, slots: 8}}" : "";
  std::string heads = "2";
  if (mixer == "gatedfwa") {  // one head of 64: the head dim the SWA kernel it runs on takes
    keys = "\n  mixers: {gatedfwa: {window: 16}}";
    heads = "1";
  }
  return "run: {name: tiny, seed: 3, device: cuda}\n"
         "model:\n  d_model: 64\n  layers: 2\n  heads: " + heads + "\n  mixer: " + mixer + keys + "\n"
         "data: {task: mqar, vocab_size: 128, seq_len: 64, num_kv_pairs: 8, train_examples: 4000, test_examples: 64}\n"
         "train: {batch_size: 32, steps: 24, lr: 3.0e-3, warmup_steps: 2, log_every: 4, eval_examples: 64}\n";
}

// Trains the tiny config and returns its train losses at each log step, then
// the test loss. `dir`: the run directory (kept), else a temporary one.
std::vector<double> train_yaml_losses(const std::string& yaml, const std::vector<std::string>& sets,
                                      const std::string& dir_in = "", bool resume = false) {
  const std::string dir = dir_in.empty() ? bla::util::make_temp_directory("bla-cuda-step") : dir_in;
  auto config = bla::config::parse_config(yaml, "tiny.yaml", sets);
  bla::train::RunOptions options;
  options.run_dir = dir;
  options.quiet = true;
  if (resume) options.resume = "auto";
  auto summary = bla::train::train(config, options);
  std::vector<double> losses;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    if (record["split"] == "train") losses.push_back(record["loss"].get<double>());
  }
  losses.push_back(summary["test"]["loss"].get<double>());
  const bool captured = summary["step"].get<std::string>().find("CUDA graph") != std::string::npos;
  EXPECT_EQ(captured, sets[0] == "train.cuda_graph=on") << summary["step"];
  if (dir_in.empty()) bla::util::remove_tree(dir);
  return losses;
}

std::vector<double> train_losses(const std::string& mixer, const std::vector<std::string>& sets,
                                 const std::string& dir_in = "", bool resume = false) {
  return train_yaml_losses(tiny_cuda_config(mixer), sets, dir_in, resume);
}

// Checkpoints do not depend on the optimizer's form: a run saved by the fused
// AdamW (inside a CUDA graph) continues under LibTorch's AdamW to the numbers
// of an uninterrupted fused run, float32 rounding apart (moments and step
// counts carried over; a lost step count would change the bias correction).
TEST(TrainStepCheckpoint, FusedAndLibTorchAdamWShareCheckpoints) {
  const std::vector<std::string> common = {"train.precision=fp32", "train.schedule=constant", "train.log_every=6"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.end(), common.begin(), common.end());
    return more;
  };
  auto whole = train_losses("attention", with({"train.cuda_graph=on", "train.steps=12"}));
  std::string dir = bla::util::make_temp_directory("bla-cuda-resume");
  train_losses("attention", with({"train.cuda_graph=on", "train.steps=6"}), dir, /*resume=*/false);
  auto resumed = train_losses("attention", with({"train.cuda_graph=off", "train.fused_optimizer=off", "train.steps=12"}), dir,
                              /*resume=*/true);
  bla::util::remove_tree(dir);
  // log lines at steps 6 (the first run's) and 12, then the test loss
  ASSERT_EQ(resumed.size(), 3u);
  ASSERT_EQ(whole.size(), 3u);
  EXPECT_EQ(resumed[0], whole[0]);
  EXPECT_NEAR(resumed[1], whole[1], 1e-4 * whole[1]);
  EXPECT_NEAR(resumed[2], whole[2], 1e-4 * whole[2]);
}

class TrainStepGraph : public testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(TrainStepGraph, CapturedStepGivesTheEagerStepsLosses) {
  const auto& [mixer, precision] = GetParam();
  auto eager = train_losses(mixer, {"train.cuda_graph=off", "train.precision=" + precision});
  auto graph = train_losses(mixer, {"train.cuda_graph=on", "train.precision=" + precision});
  ASSERT_EQ(eager.size(), graph.size());
  const double tolerance = precision == "fp32" ? 1e-5 : 2e-2;
  int identical = 0;
  for (size_t i = 0; i < eager.size(); ++i) {
    EXPECT_NEAR(graph[i], eager[i], tolerance * std::abs(eager[i])) << mixer << " " << precision << " log line " << i;
    identical += graph[i] == eager[i];
  }
  std::printf("%s %s: %d of %zu logged losses bit-identical\n", mixer.c_str(), precision.c_str(), identical, eager.size());
  EXPECT_LT(eager.back(), eager.front()) << "the run learns";
}

// RegBench's batches are as long as their longest row, so no two steps need
// share a shape; the captured step pads every batch to the task's longest row
// (train::pad_length) and replays, to the eager step's losses.
TEST(TrainStepGraphRegBench, BatchesOfEveryLengthReplayTheCapturedStepToTheEagerLosses) {
  const std::string yaml =
      "run: {name: tiny, seed: 3, device: cuda}\n"
      "model: {d_model: 64, layers: 2, heads: 2, mixer: bla, mixers: {bla: {window: 128, slots: 8}}}\n"
      "data: {task: regbench, min_examples: 2, max_examples: 6, max_word_len: 12, train_automata: 512,\n"
      "       test_automata: 32, validation_automata: 0}\n"
      "train: {batch_size: 16, steps: 24, lr: 3.0e-3, warmup_steps: 2, log_every: 4, eval_examples: 0,\n"
      "        checkpoint_every: 0}\n";
  for (const std::string precision : {"fp32", "bf16"}) {
    auto eager = train_yaml_losses(yaml, {"train.cuda_graph=off", "train.precision=" + precision});
    auto graph = train_yaml_losses(yaml, {"train.cuda_graph=on", "train.precision=" + precision});
    ASSERT_EQ(eager.size(), graph.size());
    const double tolerance = precision == "fp32" ? 1e-4 : 2e-2;
    for (size_t i = 0; i < eager.size(); ++i)
      EXPECT_NEAR(graph[i], eager[i], tolerance * std::abs(eager[i])) << precision << " log line " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Mixers, TrainStepGraph,
                         testing::Values(std::make_pair(std::string("attention"), std::string("bf16")),
                                         std::make_pair(std::string("attention"), std::string("fp32")),
                                         std::make_pair(std::string("swa"), std::string("bf16")),
                                         std::make_pair(std::string("bla"), std::string("bf16")),
                                         std::make_pair(std::string("gla"), std::string("bf16")),
                                         std::make_pair(std::string("gsa"), std::string("bf16")),
                                         std::make_pair(std::string("mamba2"), std::string("bf16")),
                                         std::make_pair(std::string("gatedfwa"), std::string("bf16"))),
                         [](const auto& info) { return info.param.first + "_" + info.param.second; });

TEST(TrainStepOptimizer, FusedAdamWMatchesLibTorchsAndSkipsOnTheFlag) {
  torch::manual_seed(0);
  auto [a, b] = bla::testing::twin_linears(64, 48, torch::kCUDA);
  bla::config::TrainConfig t;
  t.lr = 0.01;
  bla::train::Optimizer fused(*a, t, true), plain(*b, t, false);
  ASSERT_TRUE(fused.fused());
  ASSERT_FALSE(plain.fused());
  auto x = torch::randn({32, 64}, torch::kCUDA);
  for (int step = 0; step < 6; ++step) {
    const float skip = step == 3 ? 1.0f : 0.0f;
    for (auto* o : {&fused, &plain}) {
      o->set_learning_rate(0.01 * (step + 1));
      o->zero_grad();
    }
    a(x).pow(2).sum().backward();
    b(x).pow(2).sum().backward();
    auto before = a->weight.clone();
    fused.step(torch::full({}, skip, torch::TensorOptions().device(torch::kCUDA)));
    plain.step(torch::full({}, skip, torch::TensorOptions().device(torch::kCUDA)));
    if (skip) EXPECT_TRUE(torch::equal(before, a->weight));
    // float32 rounding apart (the fused kernel orders its arithmetic differently)
    EXPECT_LT((a->weight - b->weight).abs().max().item<double>(), 1e-5 * (1 + b->weight.abs().max().item<double>())) << step;
    EXPECT_LT((a->bias - b->bias).abs().max().item<double>(), 1e-5 * (1 + b->bias.abs().max().item<double>())) << step;
  }
}

// Gradient clipping on the fused path: the update divides the gradients by
// a device tensor as it reads them (StepRunner's clip; it stores them so
// divided), where LibTorch's
// AdamW steps on gradients divided first; the same weights, float32
// rounding apart (divisors that change from step to step weigh Adam's
// moments differently, so a divisor ignored would show).
TEST(TrainStepOptimizer, FusedAdamWDividesTheGradientsAsTheyAreRead) {
  torch::manual_seed(1);
  auto [a, b] = bla::testing::twin_linears(64, 48, torch::kCUDA);
  bla::config::TrainConfig t;
  t.lr = 0.01;
  bla::train::Optimizer fused(*a, t, true), plain(*b, t, false);
  ASSERT_TRUE(fused.fused());
  auto x = torch::randn({32, 64}, torch::kCUDA);
  const auto no_skip = torch::zeros({}, torch::TensorOptions().device(torch::kCUDA));
  for (int step = 0; step < 6; ++step) {
    for (auto* o : {&fused, &plain}) o->zero_grad();
    a(x).pow(2).sum().backward();
    b(x).pow(2).sum().backward();
    const float d = step % 3 == 0 ? 1.0f : 7.5f * step;
    const auto divisor = torch::full({}, d, torch::TensorOptions().device(torch::kCUDA));
    const auto grad_before = a->weight.grad().clone();
    fused.step(no_skip, divisor);
    plain.step(no_skip, divisor);
    // The kernel writes the divided gradients back, as the LibTorch form leaves them.
    EXPECT_TRUE(torch::allclose(a->weight.grad(), grad_before / divisor, 1e-6, 0)) << step;
    for (const auto& [ours, theirs] : {std::make_pair(a->weight, b->weight), std::make_pair(a->bias, b->bias)}) {
      const double scale = 1 + theirs.abs().max().item<double>();
      EXPECT_LT((ours - theirs).abs().max().item<double>(), 1e-5 * scale) << step;
    }
  }
}

TEST(TrainStepHead, FusedHeadInBf16MatchesFullLogits) {
  torch::manual_seed(1);
  auto opts = torch::TensorOptions().device(torch::kCUDA);
  auto hidden = torch::randn({1000, 128}, opts);
  auto weight = torch::randn({8192, 128}, opts) * 0.05;
  auto targets = torch::randint(0, 8192, {1000}, opts.dtype(torch::kLong));
  targets.narrow(0, 0, 100).fill_(bla::tasks::kIgnoreIndex);
  auto h1 = hidden.clone().requires_grad_(true), w1 = weight.clone().requires_grad_(true);
  auto h2 = hidden.to(torch::kDouble).requires_grad_(true), w2 = weight.to(torch::kDouble).requires_grad_(true);
  bla::compat::set_cuda_autocast(true, at::kBFloat16);
  auto fused = bla::model::head_cross_entropy(h1, w1, targets, 300);
  bla::compat::set_cuda_autocast(false, at::kBFloat16);
  auto ref = bla::model::head_cross_entropy_reference(h2, w2, targets);
  fused.loss.backward();
  ref.loss.backward();
  auto rel = [](const torch::Tensor& x, const torch::Tensor& r) {
    return ((x.to(torch::kDouble) - r).norm() / r.norm()).item<double>();
  };
  EXPECT_LT(std::abs(fused.loss.item<double>() - ref.loss.item<double>()) / ref.loss.item<double>(), 1e-2);
  EXPECT_LT(rel(h1.grad(), h2.grad()), 2e-2);
  EXPECT_LT(rel(w1.grad(), w2.grad()), 2e-2);
  EXPECT_EQ(fused.count.item<double>(), 900.0);
}

}  // namespace
