// Ensembles on a GPU: each member of an ensemble trained as one batched model
// (graph-captured step, fused per-member AdamW) against the solo run of its
// config, in float32 (tight) and bf16 (bf16 tolerance), for every mixer the
// tiny config covers.
#include "bla/config/members.h"
#include "bla/train/ensemble_trainer.h"
#include "bla/train/trainer.h"
#include "bla/util/files.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

namespace {

std::string tiny_cuda_config(const std::string& mixer) {
  std::string keys = mixer == "swa"      ? "\n  mixers: {swa: {window: 16}}"
                     : mixer == "bla"    ? "\n  mixers: {bla: {window: 32, slots: 8}}"
                     : mixer == "mamba2" ? "\n  mixers: {mamba2: {d_state: 16, head_dim: 32}}"
                                         : "";
  return "run: {name: tiny, seed: [3, 4], device: cuda}\n"
         "model:\n  d_model: 64\n  layers: 2\n  heads: 2\n  mixer: " + mixer + keys + "\n"
         "data: {task: mqar, vocab_size: 128, seq_len: 64, num_kv_pairs: 8, train_examples: 4000, test_examples: 64}\n"
         "train: {batch_size: 32, steps: 24, lr: [3.0e-3, 1.0e-3], warmup_steps: 2, log_every: 4, eval_examples: 64}\n";
}

std::vector<double> losses_of(const std::string& dir, const nlohmann::json& summary) {
  std::vector<double> losses;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    if (record["split"] == "train") losses.push_back(record["loss"].get<double>());
  }
  losses.push_back(summary["test"]["loss"].get<double>());
  return losses;
}

// Trains the tiny ensemble (seeds x rates: four members) and every member alone; compares losses.
void expect_members_equal_solo_runs(const std::string& mixer, const std::vector<std::string>& sets, double tolerance) {
  const std::string root = bla::util::make_temp_directory("bla-cuda-ensemble");
  const std::string path = root + "/tiny.yaml";
  bla::util::write_file_atomically(path, tiny_cuda_config(mixer));
  auto members = bla::config::load_member_configs(path, sets);
  ASSERT_EQ(members.configs.size(), 4u);
  auto solo_configs = members.configs;
  bla::train::EnsembleOptions options;
  options.run_dirs = bla::train::member_run_directories(members.configs.front(), members.labels, {root + "/ensemble"});
  options.labels = members.labels;
  options.quiet = true;
  auto summaries = bla::train::train_ensemble(std::move(members.configs), options);
  EXPECT_NE(summaries.front()["step"].get<std::string>().find("CUDA graph"), std::string::npos) << summaries.front()["step"];
  for (size_t e = 0; e < solo_configs.size(); ++e) {
    bla::train::RunOptions solo;
    solo.run_dir = root + "/solo-" + std::to_string(e);
    solo.quiet = true;
    auto alone = losses_of(solo.run_dir, bla::train::train(solo_configs[e], solo));
    auto joint = losses_of(options.run_dirs[e], summaries[e]);
    ASSERT_EQ(joint.size(), alone.size());
    for (size_t i = 0; i < alone.size(); ++i) {
      EXPECT_NEAR(joint[i], alone[i], tolerance * std::fabs(alone[i]))
          << mixer << " member " << members.labels[e] << ", loss " << i << " of " << alone.size();
    }
  }
  bla::util::remove_tree(root);
}

}  // namespace

class EnsembleOnGpu : public ::testing::TestWithParam<std::string> {};

TEST_P(EnsembleOnGpu, MembersEqualTheirSoloRunsInFloat32) {
  expect_members_equal_solo_runs(GetParam(), {"train.precision=fp32"}, 1e-4);
}

TEST_P(EnsembleOnGpu, MembersEqualTheirSoloRunsInBf16) { expect_members_equal_solo_runs(GetParam(), {}, 3e-2); }

INSTANTIATE_TEST_SUITE_P(Mixers, EnsembleOnGpu, ::testing::Values("attention", "bla", "mamba2"));

// Zoology's MQAR block (a short convolution before the mixer, no MLP) with
// validation and early stopping: members still equal their solo runs, and a
// member that reaches the target stops where its solo run stops.
TEST(EnsembleOnGpu, ZoologysBlockWithEarlyStoppingMembersEqualTheirSoloRuns) {
  expect_members_equal_solo_runs("bla",
                                 {"train.precision=fp32", "model.short_conv=3", "model.mlp=none",
                                  "data.validation_examples=64", "train.validation_every=4",
                                  "train.early_stop_metric=loss", "train.early_stop_at=4.5"},
                                 1e-4);
}
