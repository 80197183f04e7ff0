// scripts/sweep_archive.sh on a made-up sweep folder: runs.tgz holds every
// run's logs and records and no checkpoint; the newest checkpoint of each
// unfinished run is kept, those with the most steps first, at most the number
// asked for and none larger than the size limit, each with a line saying
// why; a folder that is no sweep's is refused. (tests/sweep/sweep_test.cpp
// resumes a real run from what it keeps.)
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <string>

using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

const std::string kScript = std::string(BLA_SOURCE_DIR) + "/scripts/sweep_archive.sh";

void put(const std::string& path, const std::string& bytes) {
  util::create_directories(util::parent_path(path));
  util::write_file_atomically(path, bytes);
}

// runs/done (finished, with a checkpoint), runs/early (steps 4 and 8),
// runs/late (step 12), runs/fresh (no checkpoint yet), and a sweep log.
std::string made_up_sweep(const TempDir& tmp) {
  const std::string dir = tmp / "sweep";
  put(dir + "/logs/done.log", "log\n");
  put(dir + "/runs/done/summary.json", "{}\n");
  put(dir + "/runs/done/config.yaml", "a: 1\n");
  put(dir + "/runs/done/checkpoints/step-00000010.ckpt", "done-10");
  put(dir + "/runs/early/train.log", "early\n");
  put(dir + "/runs/early/metrics.jsonl", "{}\n");
  put(dir + "/runs/early/checkpoints/step-00000004.ckpt", "early-4");
  put(dir + "/runs/early/checkpoints/step-00000008.ckpt", "early-8");
  put(dir + "/runs/late/sweep_point.json", "{}\n");
  put(dir + "/runs/late/checkpoints/step-00000012.ckpt", "late-12");
  put(dir + "/runs/fresh/train.log", "fresh\n");
  return dir;
}

std::string listing(const std::string& archive) {
  return run_command("tar tzf " + archive + " | LC_ALL=C sort", 30).output;
}

}  // namespace

TEST(SweepArchive, KeepsTheNewestCheckpointsOfUnfinishedRunsMostStepsFirst) {
  TempDir tmp;
  const std::string dir = made_up_sweep(tmp);
  const std::string dest = tmp / "out";
  auto run = run_command(kScript + " " + dir + " " + dest + " 1", 60);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_EQ(listing(dest + "/runs.tgz"),
            "logs/done.log\nruns/done/config.yaml\nruns/done/summary.json\nruns/early/metrics.jsonl\n"
            "runs/early/train.log\nruns/fresh/train.log\nruns/late/sweep_point.json\n");
  EXPECT_EQ(listing(dest + "/ckpt_late.tgz"), "runs/late/checkpoints/step-00000012.ckpt\n");
  EXPECT_FALSE(util::path_exists(dest + "/ckpt_early.tgz"));
  EXPECT_FALSE(util::path_exists(dest + "/ckpt_done.tgz"));
  EXPECT_NE(run.output.find("kept runs/late/checkpoints/step-00000012.ckpt (step 12, 1 MiB) in ckpt_late.tgz"),
            std::string::npos) << run.output;
  EXPECT_NE(run.output.find("not kept (CHECKPOINTS=1 reached): runs/early/checkpoints/step-00000008.ckpt"),
            std::string::npos) << run.output;

  // Room for more: the second run's newest checkpoint only; no number keeps none.
  const std::string more = tmp / "more";
  ASSERT_EQ(run_command(kScript + " " + dir + " " + more + " 5", 60).status, 0);
  EXPECT_EQ(listing(more + "/ckpt_early.tgz"), "runs/early/checkpoints/step-00000008.ckpt\n");
  EXPECT_TRUE(util::path_exists(more + "/ckpt_late.tgz"));
  EXPECT_EQ(run_command("ls " + more, 30).output, "ckpt_early.tgz\nckpt_late.tgz\nruns.tgz\n");  // not the finished run's
  const std::string none = tmp / "none";
  ASSERT_EQ(run_command(kScript + " " + dir + " " + none, 60).status, 0);
  EXPECT_TRUE(util::path_exists(none + "/runs.tgz"));
  EXPECT_EQ(run_command("ls " + none, 30).output, "runs.tgz\n");
}

TEST(SweepArchive, ACheckpointAboveTheSizeLimitIsLeftOutWithALine) {
  TempDir tmp;
  const std::string dir = made_up_sweep(tmp);
  // 3 MiB that gzip cannot shrink.
  ASSERT_EQ(run_command("head -c 3145728 /dev/urandom > " + dir + "/runs/late/checkpoints/step-00000012.ckpt", 30)
                .status,
            0);
  const std::string dest = tmp / "out";
  auto run = run_command("env CKPT_MAX_MB=2 " + kScript + " " + dir + " " + dest + " 2", 60);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("not kept (4 MiB > CKPT_MAX_MB=2): runs/late/checkpoints/step-00000012.ckpt"),
            std::string::npos) << run.output;
  EXPECT_FALSE(util::path_exists(dest + "/ckpt_late.tgz"));
  EXPECT_EQ(listing(dest + "/ckpt_early.tgz"), "runs/early/checkpoints/step-00000008.ckpt\n");
}

TEST(SweepArchive, AFolderWithoutRunsIsRefused) {
  TempDir tmp;
  util::create_directories(tmp / "empty");
  auto run = run_command(kScript + " " + (tmp / "empty") + " " + (tmp / "out"), 60);
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(run.output, "sweep_archive.sh: " + (tmp / "empty") +
                            " has no runs/ folder: not a sweep folder (bla-sweep --out)\n");
}
