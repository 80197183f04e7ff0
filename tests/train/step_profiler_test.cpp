// train.profile_steps: profile.txt of the steps it names (train/step_profiler.h).
#include "bla/config/config.h"
#include "bla/config/members.h"
#include "bla/train/ensemble_trainer.h"
#include "bla/train/step_profiler.h"
#include "bla/train/trainer.h"
#include "bla/util/files.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <fstream>

using bla::testing::TempDir;
using bla::testing::tiny_mqar_config;
using bla::train::ProfileRow;

namespace {

nlohmann::json run(const std::vector<std::string>& overrides, const std::string& dir) {
  bla::train::RunOptions options;
  options.run_dir = dir;
  options.quiet = true;
  return bla::train::train(bla::config::parse_config(tiny_mqar_config(), "tiny.yaml", overrides), options);
}

std::vector<double> train_losses(const std::string& dir) {
  std::vector<double> losses;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto record = nlohmann::json::parse(line);
    if (record["split"] == "train") losses.push_back(record["loss"].get<double>());
  }
  return losses;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(StepProfiler, TheTableListsTheGpuFirstThenTheHostEachByTimePerStep) {
  const std::vector<ProfileRow> rows = {
      {"host_op", false, 4, 500.0},
      {"small_kernel", true, 2, 100.0},
      {"big_kernel", true, 6, 300.0},
      {"host_rare", false, 2, 50.0},
  };
  const std::string table = bla::train::profile_table(rows, 10, 2, 1000.0);
  EXPECT_TRUE(contains(table, "steps 11..12 (2 profiled): 1.000 ms of wall time, 0.500 ms a step\n")) << table;
  EXPECT_TRUE(contains(table, "GPU busy: 0.200 ms a step, 40.0% of the wall time")) << table;
  // ms a step, share of the GPU's busy time, calls a step.
  EXPECT_TRUE(contains(table, "     0.1500   75.0%           3.0  big_kernel\n")) << table;
  EXPECT_TRUE(contains(table, "     0.0500   25.0%           1.0  small_kernel\n")) << table;
  EXPECT_TRUE(contains(table, "     0.2500           2.0  host_op\n")) << table;
  EXPECT_LT(table.find("big_kernel"), table.find("small_kernel"));
  EXPECT_LT(table.find("small_kernel"), table.find("host_op"));
  EXPECT_LT(table.find("host_op"), table.find("host_rare"));

  const auto sorted = bla::train::sort_profile(rows);
  ASSERT_EQ(sorted.size(), 4u);
  EXPECT_EQ(sorted[0].name, "big_kernel");
  EXPECT_EQ(sorted[3].name, "host_rare");
}

TEST(StepProfiler, LongNamesAreCutAndRowsPastTheTopAreCounted) {
  std::vector<ProfileRow> rows;
  for (int i = 0; i < 5; ++i) rows.push_back({"host" + std::to_string(i), false, 1, 10.0 * (i + 1)});
  rows.push_back({std::string(200, 'k'), true, 1, 1.0});
  const std::string table = bla::train::profile_table(rows, 0, 1, 100.0, /*top=*/3);
  EXPECT_TRUE(contains(table, std::string(107, 'k') + "...\n")) << table;
  EXPECT_FALSE(contains(table, std::string(108, 'k')));
  EXPECT_TRUE(contains(table, "  (2 more)\n")) << table;
  EXPECT_TRUE(contains(table, "host4")) << table;
  EXPECT_FALSE(contains(table, "host1\n")) << table;
}

TEST(StepProfiler, ARunProfilesTheStepsItNamesAndTrainsAsItWouldWithout) {
  TempDir tmp;
  const std::vector<std::string> base = {"train.steps=8", "train.log_every=2", "run.device=cpu"};
  auto with = base;
  with.insert(with.end(), {"train.profile_steps=2", "train.profile_start=3"});
  run(base, tmp / "plain");
  run(with, tmp / "profiled");
  EXPECT_FALSE(bla::util::path_exists(tmp / "plain/profile.txt"));
  const std::string table = bla::util::read_file(tmp / "profiled/profile.txt");
  EXPECT_TRUE(contains(table, "steps 4..5 (2 profiled)")) << table;
  EXPECT_TRUE(contains(table, "aten::mm")) << table;  // the projections' matrix products
  EXPECT_TRUE(contains(table, "GPU: no device events")) << table;
  EXPECT_TRUE(contains(bla::util::read_file(tmp / "profiled/train.log"), "profile: steps 4..5 in profile.txt"));
  EXPECT_EQ(train_losses(tmp / "plain"), train_losses(tmp / "profiled"));
}

TEST(StepProfiler, ARunThatEndsInsideTheWindowWritesTheStepsItProfiled) {
  TempDir tmp;
  run({"train.steps=5", "run.device=cpu", "train.profile_steps=10", "train.profile_start=3"}, tmp / "run");
  const std::string table = bla::util::read_file(tmp / "run/profile.txt");
  EXPECT_TRUE(contains(table, "steps 4..5 (2 profiled)")) << table;
}

TEST(StepProfiler, AnEnsembleWritesItsStepsProfileIntoTheFirstMembersDirectory) {
  TempDir tmp;
  const std::string path = tmp / "ensemble.yaml";
  bla::util::write_file_atomically(path, tiny_mqar_config());
  auto members = bla::config::load_member_configs(path, {"train.lr=[1.0e-3, 2.0e-3]", "train.steps=6", "run.device=cpu",
                                                         "train.profile_steps=2", "train.profile_start=2"});
  bla::train::EnsembleOptions options;
  options.run_dirs = {tmp / "a", tmp / "b"};
  options.labels = members.labels;
  options.quiet = true;
  bla::train::train_ensemble(std::move(members.configs), options);
  const std::string table = bla::util::read_file(tmp / "a/profile.txt");
  EXPECT_TRUE(contains(table, "steps 3..4 (2 profiled)")) << table;
  EXPECT_FALSE(bla::util::path_exists(tmp / "b/profile.txt"));
}
