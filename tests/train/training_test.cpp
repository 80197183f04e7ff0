#include "bla/config/config.h"
#include "bla/model/lm.h"
#include "bla/train/checkpoint.h"
#include "bla/train/trainer.h"
#include "bla/util/files.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

using bla::testing::TempDir;
using bla::testing::tiny_mqar_config;

namespace {

bla::config::Config tiny(const std::vector<std::string>& overrides = {}) {
  return bla::config::parse_config(tiny_mqar_config(), "tiny.yaml", overrides);
}

nlohmann::json run(const bla::config::Config& config, const std::string& dir, const std::string& resume = "") {
  bla::train::RunOptions options;
  options.run_dir = dir;
  options.resume = resume;
  options.quiet = true;
  return bla::train::train(config, options);
}

// metrics.jsonl lines without the wall-clock fields.
std::vector<nlohmann::json> metric_lines(const std::string& dir) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    for (const char* key : {"tokens_per_s", "elapsed_s", "log_interval_s"}) record.erase(key);
    lines.push_back(record);
  }
  return lines;
}


TEST(Training, LossFallsOnATinyRun) {
  TempDir tmp;
  auto config = tiny({"train.steps=40", "train.lr=1e-2", "train.log_every=10"});
  auto summary = run(config, tmp / "run");
  auto lines = metric_lines(tmp / "run");
  std::vector<double> losses;
  for (const auto& l : lines)
    if (l["split"] == "train") losses.push_back(l["loss"].get<double>());
  ASSERT_EQ(losses.size(), 4u);
  EXPECT_LT(losses.back(), losses.front() - 0.5) << "loss " << losses.front() << " -> " << losses.back();
  EXPECT_TRUE(bla::util::path_exists(tmp / "run/config.yaml"));
  EXPECT_TRUE(bla::util::path_exists(tmp / "run/summary.json"));
  EXPECT_EQ(summary["state"]["per_layer"].size(), 2u);
  EXPECT_EQ(summary["state"]["total_numel"].get<int64_t>(), 2 * (2 * 32 * 32));
}

TEST(Training, ResumedRunIsBitwiseIdenticalToAnUninterruptedOne) {
  TempDir tmp;
  auto config = tiny();  // 12 steps, checkpoints every 3
  run(config, tmp / "straight");
  // Stop after 6 steps: a run whose schedule still says 12 steps, cut short by
  // resuming from its step-6 checkpoint in a fresh directory.
  run(config, tmp / "resumed");
  bla::train::CheckpointDirectory checkpoints(tmp / "resumed/checkpoints", 100);
  for (const auto& path : checkpoints.list()) {
    if (path.find("step-00000006") == std::string::npos) bla::util::remove_file(path);
  }
  {
    // Forget everything after step 6 in the metrics too: resume must redo it.
    std::ofstream(tmp / "resumed/metrics.jsonl", std::ios::app) << "{\"step\": 99, \"split\": \"train\"}\n";
  }
  run(config, tmp / "resumed", "auto");
  auto a = bla::testing::newest_tiny_parameters(config, tmp / "straight"), b = bla::testing::newest_tiny_parameters(config, tmp / "resumed");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  EXPECT_EQ(metric_lines(tmp / "straight"), metric_lines(tmp / "resumed"));
}

TEST(Training, RunOfNStepsResumedTo2NMatchesA2NRun) {
  // With a constant schedule the first n steps do not depend on the total.
  TempDir tmp;
  run(tiny({"train.schedule=constant"}), tmp / "straight");
  run(tiny({"train.schedule=constant", "train.steps=6"}), tmp / "resumed");
  run(tiny({"train.schedule=constant"}), tmp / "resumed", "auto");
  auto config = tiny();
  auto a = bla::testing::newest_tiny_parameters(config, tmp / "straight"), b = bla::testing::newest_tiny_parameters(config, tmp / "resumed");
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  auto train_lines = [](std::vector<nlohmann::json> lines) {
    lines.erase(std::remove_if(lines.begin(), lines.end(), [](const auto& l) { return l["split"] != "train"; }), lines.end());
    return lines;
  };
  EXPECT_EQ(train_lines(metric_lines(tmp / "straight")), train_lines(metric_lines(tmp / "resumed")));
}

TEST(Training, ResumeAutoWithoutCheckpointsStartsFresh) {
  TempDir tmp;
  auto summary = run(tiny({"train.steps=2"}), tmp / "run", "auto");
  EXPECT_EQ(summary["steps"].get<int64_t>(), 2);
}

TEST(Training, KeepsOnlyTheNewestCheckpoints) {
  TempDir tmp;
  run(tiny({"train.keep_checkpoints=2"}), tmp / "run");
  auto all = bla::train::CheckpointDirectory(tmp / "run/checkpoints", 2).list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_NE(all[0].find("step-00000009.ckpt"), std::string::npos);
  EXPECT_NE(all[1].find("step-00000012.ckpt"), std::string::npos);
}

TEST(Checkpoint, TruncatedOrCorruptedFilesAreRejected) {
  TempDir tmp;
  auto config = tiny({"train.steps=3"});
  run(config, tmp / "run");
  std::string path = tmp / "run/checkpoints/step-00000003.ckpt";
  std::string bytes = bla::util::read_file(path);
  bla::model::LanguageModel model(config.model, 64, 32);

  bla::util::write_file_atomically(tmp / "truncated.ckpt", bytes.substr(0, bytes.size() / 2));
  try {
    bla::train::load_checkpoint(tmp / "truncated.ckpt", *model, nullptr);
    FAIL();
  } catch (const bla::train::CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()), "checkpoint " + (tmp / "truncated.ckpt") +
                                         " is corrupt or truncated (no bla-train seal at the end); delete it and resume "
                                         "from an earlier checkpoint");
  }
  std::string flipped = bytes;
  flipped[flipped.size() / 3] ^= 0x55;
  bla::util::write_file_atomically(tmp / "flipped.ckpt", flipped);
  try {
    bla::train::load_checkpoint(tmp / "flipped.ckpt", *model, nullptr);
    FAIL();
  } catch (const bla::train::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("is corrupt or truncated (checksum mismatch)"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, ResumeAutoSkipsACorruptNewestCheckpoint) {
  TempDir tmp;
  auto config = tiny({"train.steps=6"});
  run(config, tmp / "run");
  std::string newest = tmp / "run/checkpoints/step-00000006.ckpt";
  std::string bytes = bla::util::read_file(newest);
  bla::util::write_file_atomically(newest, bytes.substr(0, 100));
  auto summary = run(tiny({"train.steps=6"}), tmp / "run", "auto");  // redoes steps 4..6
  EXPECT_EQ(summary["steps"].get<int64_t>(), 6);
  EXPECT_NO_THROW(bla::train::read_checkpoint_meta(newest));
}

TEST(Checkpoint, AnotherModelConfigIsRejectedClearly) {
  TempDir tmp;
  run(tiny({"train.steps=3"}), tmp / "run");
  auto other = tiny({"model.d_model=16", "model.heads=2"});
  bla::model::LanguageModel model(other.model, 64, 32);
  try {
    bla::train::load_checkpoint(tmp / "run/checkpoints/step-00000003.ckpt", *model, nullptr);
    FAIL();
  } catch (const bla::train::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("was made with another model config: parameter 'blocks.0.mixer.k_proj.weight' has "
                                         "shape [32,32] there and [16,16] here. Its model section was: {d_model: 32, "),
              std::string::npos)
        << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

// Trains 3 steps into `dir`, poisons that checkpoint with a NaN weight and
// resumes from it with `overrides`; returns the NonFiniteError's message.
std::string nonfinite_error_after_poisoned_resume(const std::string& dir, const std::vector<std::string>& overrides) {
  auto config = tiny({"train.steps=3"});
  run(config, dir);
  bla::testing::poison_tiny_checkpoint(config, dir + "/checkpoints/step-00000003.ckpt");
  try {
    run(tiny(overrides), dir, dir + "/checkpoints/step-00000003.ckpt");
  } catch (const bla::train::NonFiniteError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Training, NonFiniteLossStopsNamingTheStepAndWritesNoCheckpoint) {
  TempDir tmp;
  const auto what = nonfinite_error_after_poisoned_resume(tmp / "run", {"train.steps=6"});
  EXPECT_NE(what.find("step 4: loss is not finite"), std::string::npos) << what;
  EXPECT_EQ(bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list().size(), 1u);
}

TEST(Training, SkippingNonFiniteStepsStillNeverSavesBadWeights) {
  TempDir tmp;
  const auto what = nonfinite_error_after_poisoned_resume(tmp / "run", {"train.steps=6", "train.on_nonfinite=skip"});
  EXPECT_NE(what.find("step 6: parameters are not finite; no checkpoint written"), std::string::npos) << what;
  EXPECT_EQ(bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list().size(), 1u);
}

TEST(Training, TooManySkippedUpdatesInARowStopTheRun) {
  TempDir tmp;
  const auto what = nonfinite_error_after_poisoned_resume(
      tmp / "run", {"train.steps=9", "train.on_nonfinite=skip", "train.max_consecutive_skips=2", "train.log_every=1"});
  EXPECT_NE(what.find("step 4: loss is not finite"), std::string::npos) << what;
  EXPECT_NE(what.find("2 updates in a row were skipped"), std::string::npos) << what;
  // The skipped step was logged as such before the stop.
  auto lines = metric_lines(tmp / "run");
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["step"].get<int64_t>(), 4);
  EXPECT_EQ(lines.back()["skipped_steps"].get<int64_t>(), 1);
}

TEST(RunDirectory, AFreshRunWhereCheckpointsExistIsRefusedAndNothingIsLost) {
  TempDir tmp;
  run(tiny({"train.steps=6"}), tmp / "run");
  const auto before = bla::util::read_file(tmp / "run/metrics.jsonl");
  try {
    run(tiny({"train.steps=2"}), tmp / "run");
    FAIL() << "expected a refusal";
  } catch (const bla::config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("holds 2 checkpoint(s) of an earlier run (newest step-00000006.ckpt): continue "
                                         "it with --resume auto, train into a new --out, or pass --overwrite"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(bla::util::read_file(tmp / "run/metrics.jsonl"), before);
  EXPECT_EQ(bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list().size(), 2u);
}

TEST(RunDirectory, OverwriteMovesTheEarlierRunAside) {
  TempDir tmp;
  run(tiny({"train.steps=6"}), tmp / "run");
  bla::train::RunOptions options;
  options.run_dir = tmp / "run";
  options.quiet = true;
  options.overwrite = true;
  bla::train::train(tiny({"train.steps=3"}), options);
  std::string aside;
  for (const auto& name : bla::util::list_directory(tmp / "run")) {
    if (name.rfind("previous-", 0) == 0) aside = tmp / "run/" + name;
  }
  ASSERT_FALSE(aside.empty());
  EXPECT_EQ(bla::train::CheckpointDirectory(aside + "/checkpoints", 100).list().size(), 2u);
  EXPECT_TRUE(bla::util::path_exists(aside + "/metrics.jsonl"));
  auto now = bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(bla::util::file_name(now[0]), "step-00000003.ckpt");
}

TEST(RunDirectory, ResumingFromAnOlderCheckpointSetsTheLaterOnesAside) {
  TempDir tmp;
  run(tiny({"train.steps=12", "train.checkpoint_every=3"}), tmp / "run");  // 3, 6, 9, 12
  run(tiny({"train.steps=8", "train.checkpoint_every=3"}), tmp / "run", tmp / "run/checkpoints/step-00000003.ckpt");
  std::vector<std::string> names;
  for (const auto& p : bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list()) {
    names.push_back(bla::util::file_name(p));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"step-00000003.ckpt", "step-00000006.ckpt", "step-00000008.ckpt"}));
  int abandoned = 0;
  for (const auto& name : bla::util::list_directory(tmp / "run/checkpoints")) {
    if (name.rfind("abandoned-after-3-", 0) == 0) {
      abandoned = static_cast<int>(bla::train::CheckpointDirectory(tmp / "run/checkpoints/" + name, 100).list().size());
    }
  }
  EXPECT_EQ(abandoned, 3) << "6, 9 and 12 of the abandoned line";
  // --resume auto continues the current line (step 8), not the abandoned 12.
  auto summary = run(tiny({"train.steps=9", "train.checkpoint_every=3"}), tmp / "run", "auto");
  EXPECT_EQ(summary["steps"].get<int64_t>(), 9);
  EXPECT_EQ(bla::train::read_checkpoint_meta(tmp / "run/checkpoints/step-00000009.ckpt").at("step").get<int64_t>(), 9);
}

TEST(RunDirectory, ResumeAutoRefusesWhenEveryCheckpointIsDamaged) {
  TempDir tmp;
  run(tiny({"train.steps=6"}), tmp / "run");
  for (const auto& path : bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list()) {
    auto bytes = bla::util::read_file(path);
    bytes[bytes.size() / 2] ^= 0x5a;
    std::ofstream(path, std::ios::binary) << bytes;
  }
  try {
    run(tiny({"train.steps=9"}), tmp / "run", "auto");
    FAIL() << "expected a refusal";
  } catch (const bla::train::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("every checkpoint in"), std::string::npos) << e.what();
  }
  EXPECT_EQ(bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list().size(), 2u);
}

TEST(Training, WritesATensorBoardEventFileWithTheLoggedScalars) {
  TempDir tmp;
  run(tiny({"train.steps=4"}), tmp / "run");
  std::string events;
  for (const auto& name : bla::util::list_directory(tmp / "run")) {
    if (name.rfind("events.out.tfevents.", 0) == 0) events = bla::util::read_file(tmp / "run/" + name);
  }
  ASSERT_FALSE(events.empty()) << "no events.out.tfevents.* in the run directory";
  for (const char* tag : {"train/loss", "train/accuracy", "train/lr", "train/grad_norm", "test/accuracy"}) {
    EXPECT_NE(events.find(tag), std::string::npos) << tag;
  }
  run(tiny({"train.steps=2", "train.tensorboard=false"}), tmp / "off");
  for (const auto& name : bla::util::list_directory(tmp / "off")) EXPECT_NE(name.rfind("events.", 0), 0u) << name;
}

TEST(RunDirectory, ResumingWithAnotherModelConfigNamesTheDifference) {
  TempDir tmp;
  const std::string bla = tiny_mqar_config("bla", "  mixers: {bla: {window: 16, slots: 4}}\n");
  auto first = bla::config::parse_config(bla, "tiny.yaml", {"train.steps=3"});
  run(first, tmp / "run");
  auto other = bla::config::parse_config(bla, "tiny.yaml", {"train.steps=6", "model.mixers.bla.slots=8"});
  try {
    run(other, tmp / "run", "auto");
    FAIL() << "expected a refusal: the parameter shapes match, the model does not";
  } catch (const bla::train::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("slots: checkpoint has 4, config has 8"), std::string::npos) << e.what();
  }
}

TEST(RunDirectory, ResumingWithAnotherDataConfigNamesTheDifference) {
  TempDir tmp;
  run(tiny({"train.steps=3"}), tmp / "run");
  try {
    run(tiny({"train.steps=6", "data.num_kv_pairs=2"}), tmp / "run", "auto");
    FAIL() << "expected a refusal";
  } catch (const bla::train::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("another data config (data.num_kv_pairs: checkpoint has 4, config has 2)"),
              std::string::npos)
        << e.what();
  }
  // What does not change the training data may change.
  EXPECT_NO_THROW(run(tiny({"train.steps=6", "data.test_examples=32"}), tmp / "run", "auto"));
}

TEST(RunDirectory, EveryCheckpointAndTheDirectoryCarryTheRunsIdentity) {
  TempDir tmp;
  run(tiny({"train.steps=3"}), tmp / "run");
  run(tiny({"train.steps=6"}), tmp / "run", "auto");
  auto identity = nlohmann::json::parse(bla::util::read_file(tmp / "run/run.json"));
  const std::string id = identity.at("id").get<std::string>();
  EXPECT_EQ(id.size(), 16u);
  for (const auto& path : bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list()) {
    auto meta = bla::train::read_checkpoint_meta(path);
    EXPECT_EQ(meta.at("run").at("id").get<std::string>(), id) << path << ": a resumed run keeps its id";
    EXPECT_EQ(meta.at("run").at("model_data_hash"), identity.at("model_data_hash")) << path;
  }
  bla::train::RunOptions options;
  options.run_dir = tmp / "run";
  options.quiet = true;
  options.overwrite = true;
  bla::train::train(tiny({"train.steps=2"}), options);
  EXPECT_NE(nlohmann::json::parse(bla::util::read_file(tmp / "run/run.json")).at("id").get<std::string>(), id)
      << "a fresh run gets a new id";
}

TEST(Training, KilledRunLeavesALoadableCheckpoint) {
  TempDir tmp;
  std::string cfg = tmp / "cfg.yaml";
  std::ofstream(cfg) << tiny_mqar_config();
  std::string exe = std::string(BLA_BINARY_DIR) + "/src/bla-train";
  ASSERT_TRUE(bla::util::path_exists(exe)) << exe;
  for (int attempt = 0; attempt < 3; ++attempt) {
    pid_t pid = fork();
    if (pid == 0) {
      int devnull = ::open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execl(exe.c_str(), exe.c_str(), cfg.c_str(), "--out", (tmp / "run").c_str(), "--set", "train.steps=400",
            "--set", "train.checkpoint_every=1", "--resume", "auto", static_cast<char*>(nullptr));
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + 700 * attempt));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    for (const auto& path : bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list()) {
      EXPECT_NO_THROW(bla::train::read_checkpoint_meta(path)) << path;
    }
  }
  EXPECT_FALSE(bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list().empty());
}

}  // namespace
