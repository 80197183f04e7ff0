// Preemption is a checkpoint: SIGTERM ends a bla-train run after the current
// step with a checkpoint and exit status 5, and the run resumed from it ends
// with the same parameters, bit for bit, as an uninterrupted one. Temporary
// files of a save that a killed process left behind are removed at start.
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
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

using bla::testing::TempDir;
using bla::testing::tiny_mqar_config;

namespace {

TEST(Interrupt, SigtermCheckpointsAndTheResumedRunMatchesAnUninterruptedOne) {
  TempDir tmp;
  const std::string cfg = tmp / "cfg.yaml";
  std::ofstream(cfg) << tiny_mqar_config();
  const std::string exe = std::string(BLA_BINARY_DIR) + "/src/bla-train";
  const std::vector<std::string> sets = {"train.steps=300", "train.checkpoint_every=1000", "train.log_every=10"};
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<const char*> argv = {exe.c_str(), cfg.c_str(), "--out", nullptr};
    std::string out = tmp / "run";
    argv.back() = out.c_str();
    for (const auto& s : sets) {
      argv.push_back("--set");
      argv.push_back(s.c_str());
    }
    argv.push_back(nullptr);
    freopen("/dev/null", "w", stdout);
    execv(exe.c_str(), const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  // Wait until the run has logged a step, then preempt it.
  for (int i = 0; i < 600 && !bla::util::path_exists(tmp / "run/metrics.jsonl"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 5) << "interrupted runs exit 5";
  auto checkpoints = bla::train::CheckpointDirectory(tmp / "run/checkpoints", 100).list();
  ASSERT_EQ(checkpoints.size(), 1u);
  const int64_t stopped_at = bla::train::read_checkpoint_meta(checkpoints[0]).at("step").get<int64_t>();
  EXPECT_GT(stopped_at, 0);
  EXPECT_LT(stopped_at, 300) << "the signal came too late to test anything; the run was faster than expected";

  std::string command = exe + " " + cfg + " --out " + (tmp / "run") + " --resume auto";
  for (const auto& s : sets) command += " --set " + s;
  auto resumed = bla::testing::run_command(command, 300);
  ASSERT_EQ(resumed.status, 0) << resumed.output;

  auto config = bla::config::parse_config(tiny_mqar_config(), "tiny.yaml", sets);
  bla::train::RunOptions options;
  options.run_dir = tmp / "whole";
  options.quiet = true;
  bla::train::train(config, options);
  auto a = bla::testing::newest_tiny_parameters(config, tmp / "run");
  auto b = bla::testing::newest_tiny_parameters(config, tmp / "whole");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

TEST(Interrupt, StaleTemporaryCheckpointFilesAreRemovedAtStart) {
  TempDir tmp;
  bla::util::create_directories(tmp / "run/checkpoints");
  // PID 1 is alive (init) but not ours: pick a PID that cannot exist.
  const std::string stale = tmp / "run/checkpoints/step-00000003.ckpt.tmp.999999999";
  std::ofstream(stale) << "half a checkpoint";
  auto config = bla::config::parse_config(tiny_mqar_config(), "tiny.yaml", {"train.steps=2"});
  bla::train::RunOptions options;
  options.run_dir = tmp / "run";
  options.quiet = true;
  options.resume = "auto";
  bla::train::train(config, options);
  EXPECT_FALSE(bla::util::path_exists(stale));
  EXPECT_NE(bla::util::read_file(tmp / "run/train.log").find("removed step-00000003.ckpt.tmp.999999999"),
            std::string::npos);
}

}  // namespace
