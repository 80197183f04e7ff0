// The validation split and early stopping (train/early_stop.h): a run, and
// each member of an ensemble, ends once its validation metric reaches the
// target, exactly where its solo run would.
#include "bla/config/members.h"
#include "bla/tasks/mqar.h"
#include "bla/train/checkpoint.h"
#include "bla/train/ensemble_trainer.h"
#include "bla/train/trainer.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

using bla::testing::TempDir;
using bla::testing::tiny_mqar_config;

namespace {

const std::vector<std::string> kValidation = {"data.validation_examples=32", "train.validation_every=2",
                                              "train.log_every=1", "train.checkpoint_every=0"};

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

nlohmann::json train_solo(const bla::config::Config& config, const std::string& dir) {
  bla::train::RunOptions options;
  options.run_dir = dir;
  options.quiet = true;
  return bla::train::train(config, options);
}

// (step, value of `key`) of the records of `split` in metrics.jsonl.
std::vector<std::pair<int64_t, double>> logged(const std::string& dir, const std::string& split, const std::string& key) {
  std::vector<std::pair<int64_t, double>> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    if (record.at("split") == split) out.emplace_back(record.at("step").get<int64_t>(), record.at(key).get<double>());
  }
  return out;
}

// The first validation step whose loss is at most `target`, or -1.
int64_t first_reaching(const std::vector<std::pair<int64_t, double>>& losses, double target) {
  for (const auto& [step, loss] : losses) {
    if (loss <= target) return step;
  }
  return -1;
}

std::string number(double value) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}

}  // namespace

TEST(ValidationSplit, MqarValidationExamplesAreTheirOwnStream) {
  auto config = bla::config::parse_config(tiny_mqar_config(), "tiny.yaml", {"data.validation_examples=8"});
  auto task = bla::tasks::make_task(*config.data, 3);
  EXPECT_EQ(task->num_examples(bla::tasks::Split::kValidation), 8);
  const auto validation = task->batch(bla::tasks::Split::kValidation, {0, 1});
  EXPECT_FALSE(torch::equal(validation.inputs, task->batch(bla::tasks::Split::kTest, {0, 1}).inputs));
  EXPECT_FALSE(torch::equal(validation.inputs, task->batch(bla::tasks::Split::kTrain, {0, 1}).inputs));
  EXPECT_TRUE(torch::equal(validation.inputs, task->batch(bla::tasks::Split::kValidation, {0, 1}).inputs));
}

TEST(EarlyStop, ARunStopsAtTheFirstValidationThatReachesTheTarget) {
  TempDir dir;
  // A loss of at most 100 is reached at the first validation (step 2 of 12).
  auto config = bla::config::parse_config(
      tiny_mqar_config(), "tiny.yaml", with(kValidation, {"train.early_stop_metric=loss", "train.early_stop_at=100"}));
  auto summary = train_solo(config, dir / "run");
  EXPECT_EQ(summary["steps"], 2);
  EXPECT_EQ(summary["early_stop"]["step"], 2);
  EXPECT_EQ(summary["early_stop"]["metric"], "loss");
  EXPECT_EQ(summary["early_stop"]["target"], 100.0);
  const auto validation = logged(dir / "run", "validation", "loss");
  ASSERT_EQ(validation.size(), 1u);  // the stop step's, reused for the summary
  EXPECT_EQ(summary["validation"]["loss"].get<double>(), validation.front().second);
  EXPECT_EQ(summary["validation"]["examples"], 32);
  EXPECT_EQ(logged(dir / "run", "train", "loss").size(), 2u);
  EXPECT_EQ(logged(dir / "run", "test", "loss").size(), 1u);  // the final test evaluation
  const auto checkpoints = bla::train::CheckpointDirectory(dir / "run/checkpoints", 100).list();
  ASSERT_EQ(checkpoints.size(), 1u);
  EXPECT_NE(checkpoints.front().find("step-00000002.ckpt"), std::string::npos);
}

TEST(EarlyStop, SettingsThatCannotWorkAreConfigErrors) {
  EXPECT_EQ(bla::testing::config_error_of(tiny_mqar_config(), {"train.early_stop_metric=accuracy"}),
            "--set train.early_stop_metric=accuracy: train.early_stop_metric: needs validation results to stop on: set "
            "train.validation_every (e.g. 100) and the task's validation examples (e.g. data.validation_examples: 1000)");
  TempDir dir;
  auto no_examples = bla::config::parse_config(tiny_mqar_config(), "tiny.yaml", {"train.validation_every=2"});
  try {
    train_solo(no_examples, dir / "a");
    FAIL() << "expected ConfigError";
  } catch (const bla::config::ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              "train.validation_every is 2 but task mqar has no validation examples; set data.validation_examples (e.g. 1000)");
  }
  auto unknown = bla::config::parse_config(tiny_mqar_config(), "tiny.yaml",
                                           with(kValidation, {"train.early_stop_metric=acc", "train.early_stop_at=0.9"}));
  try {
    train_solo(unknown, dir / "b");
    FAIL() << "expected ConfigError";
  } catch (const bla::config::ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              "train.early_stop_metric: the validation results have no 'acc'; they have accuracy, examples, loss");
  }
}

// Two members whose validation losses cross a target at different steps: each
// stops where its solo run stops, the other goes on.
TEST(EarlyStop, EachEnsembleMemberStopsWhereItsSoloRunStops) {
  TempDir dir;
  const std::vector<std::string> seeds = {"run.seed=5", "run.seed=6"};
  std::vector<std::vector<std::pair<int64_t, double>>> curves;
  for (size_t e = 0; e < 2; ++e) {
    const std::string solo_dir = dir / ("full-" + std::to_string(e));
    train_solo(bla::config::parse_config(tiny_mqar_config(), "tiny.yaml", with(kValidation, {seeds[e]})), solo_dir);
    curves.push_back(logged(solo_dir, "validation", "loss"));
  }
  // A target halfway between two neighbouring validation losses (no loss within 1e-5 of it) that the
  // members first reach at different steps, one of them before the last step (12).
  std::set<double> values;
  for (const auto& curve : curves) {
    for (const auto& point : curve) values.insert(point.second);
  }
  double target = NAN;
  int64_t first[2] = {-1, -1};
  for (auto it = values.begin(); std::next(it) != values.end(); ++it) {
    const double low = *it, high = *std::next(it);
    if (high - low < 1e-5 * std::fabs(low)) continue;
    const double candidate = (low + high) / 2;
    const int64_t a = first_reaching(curves[0], candidate), b = first_reaching(curves[1], candidate);
    const auto stops_early = [](int64_t s) { return s > 0 && s < 12; };
    if (a != b && (stops_early(a) || stops_early(b))) {
      target = candidate;
      first[0] = a;
      first[1] = b;
      break;
    }
  }
  ASSERT_FALSE(std::isnan(target)) << "the two members' validation losses offer no target they reach at different steps";

  const std::string path = dir / "tiny.yaml";
  bla::util::write_file_atomically(path, tiny_mqar_config());
  auto members = bla::config::load_member_configs(
      path, with(kValidation, {"run.seed=[5, 6]", "train.early_stop_metric=loss", "train.early_stop_at=" + number(target)}));
  ASSERT_EQ(members.configs.size(), 2u);
  const std::vector<std::string> dirs = {dir / "a", dir / "b"};
  bla::train::EnsembleOptions options;
  options.run_dirs = dirs;
  options.labels = members.labels;
  options.quiet = true;
  auto solo_configs = members.configs;
  auto summaries = bla::train::train_ensemble(std::move(members.configs), options);
  ASSERT_EQ(summaries.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    const int64_t expected = first[e] > 0 && first[e] < 12 ? first[e] : 12;
    EXPECT_EQ(summaries[e]["steps"], expected) << "member " << e;
    EXPECT_EQ(summaries[e].contains("early_stop"), expected < 12) << "member " << e;
    // Its solo run with the same target stops at the same step.
    auto solo = train_solo(solo_configs[e], dir / ("solo-" + std::to_string(e)));
    EXPECT_EQ(solo["steps"], expected) << "member " << e;
    const auto joint = logged(dirs[e], "validation", "loss");
    const auto alone = logged(dir / ("solo-" + std::to_string(e)), "validation", "loss");
    ASSERT_EQ(joint.size(), alone.size()) << "member " << e;
    for (size_t i = 0; i < alone.size(); ++i) {
      EXPECT_NEAR(joint[i].second, alone[i].second, 1e-6 * alone[i].second) << "member " << e << ", validation " << i;
    }
  }
}
