// scripts/gpu_protocol.sh in a made-up checkout whose scripts/gpu_build.sh and
// scripts/gpu_sweep.sh stand in for the build and the sweeps (each records
// what it was given): a fresh machine restores each protocol's newest
// callN_runs.tgz (call10 before call9), a warm one restores nothing; the two
// sweeps get the call's time left, RegBench 25 s less when it starts beside
// MQAR; what comes back is what the script's header lists. (bla-sweep
// resuming from restored archives: tests/sweep/sweep_test.cpp.)
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <map>
#include <sstream>
#include <string>

using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

void put(const std::string& path, const std::string& bytes, bool executable = false) {
  util::create_directories(util::parent_path(path));
  util::write_file_atomically(path, bytes);
  if (executable) ::chmod(path.c_str(), 0755);
}

// The checkout: the real gpu_protocol.sh, the stand-ins, and archives of two
// calls for each protocol. Returns its root.
std::string made_up_checkout(const TempDir& tmp) {
  const std::string root = tmp / "repo";
  put(root + "/scripts/gpu_protocol.sh",
      util::read_file(std::string(BLA_SOURCE_DIR) + "/scripts/gpu_protocol.sh"), true);
  put(root + "/scripts/gpu_build.sh",
      "export BUILD_DIR=${BUILD_DIR:-build-gpu}\n"
      "gpu_build() { mkdir -p \"$1\"; echo \"built $*\" >> \"$1/build.log\"; }\n");
  // Records its settings in $OUT/args.txt; leaves what the real one leaves.
  put(root + "/scripts/gpu_sweep.sh",
      "#!/usr/bin/env bash\n"
      "mkdir -p \"$OUT\"\n"
      "echo \"SWEEP=$SWEEP ONLY=$ONLY GPUS=$GPUS ENSEMBLE=$ENSEMBLE CHECKPOINTS=$CHECKPOINTS LIMIT=$LIMIT "
      "FINISH_BY=$FINISH_BY EXPECT=$EXPECT RESTORE=$RESTORE\" > \"$OUT/args.txt\"\n"
      "name=$(basename \"$SWEEP\" .yaml)\n"
      "mkdir -p \"$OUT/$name\"\n"
      "echo log > \"$OUT/sweep.log\"; echo build > \"$OUT/build.log\"\n"
      "echo name,status > \"$OUT/$name/results.csv\"; echo tables > \"$OUT/$name/tables.md\"\n"
      "echo runs > \"$OUT/$name/runs.tgz\"; echo ckpt > \"$OUT/$name/ckpt_a.tgz\"\n",
      true);
  for (const std::string call : {"call9", "call10"}) {
    put(root + "/docs/data/mqar_protocol/full/" + call + "_runs.tgz", call);
    put(root + "/docs/data/regbench_protocol/" + call + "_runs.tgz", call);
  }
  return root;
}

// "KEY=VALUE ..." of an args.txt (values without spaces; RESTORE last, whole).
std::map<std::string, std::string> settings(const std::string& path) {
  std::map<std::string, std::string> out;
  std::string text = util::read_file(path);
  const size_t restore = text.find(" RESTORE=");
  out["RESTORE"] = text.substr(restore + 9, text.find('\n') - restore - 9);
  std::istringstream words(text.substr(0, restore));
  for (std::string word; words >> word;) out[word.substr(0, word.find('='))] = word.substr(word.find('=') + 1);
  return out;
}

std::string protocol(const TempDir& tmp, const std::string& root, const std::string& env) {
  return "env OUT=" + (tmp / "out") + " RB_WORK=" + (tmp / "rb") + " BUILD_DIR=" + root + "/build-gpu " + env +
         " bash " + root + "/scripts/gpu_protocol.sh";
}

}  // namespace

TEST(GpuProtocol, AFreshMachineRunsBothSweepsFromTheNewestArchives) {
  TempDir tmp;
  const std::string root = made_up_checkout(tmp);
  const auto run = run_command(protocol(tmp, root, "CALL_LIMIT=300"), 120);
  ASSERT_EQ(run.status, 0) << run.output;

  auto mqar = settings(tmp / "out/sw/args.txt");
  EXPECT_EQ(mqar["SWEEP"], "configs/sweeps/mqar.yaml");
  EXPECT_EQ(mqar["RESTORE"], "docs/data/mqar_protocol/full/call10_runs.tgz ");
  EXPECT_EQ(mqar["GPUS"], "0,0");
  EXPECT_EQ(mqar["ENSEMBLE"], "4");
  EXPECT_EQ(mqar["CHECKPOINTS"], "3");
  const int limit = std::stoi(mqar["LIMIT"]);
  EXPECT_GE(limit, 270);  // 300 less 25, less the seconds the script has run
  EXPECT_LE(limit, 275);
  EXPECT_EQ(std::stoi(mqar["FINISH_BY"]), limit - 20);

  auto rb = settings(tmp / "rb/args.txt");
  EXPECT_EQ(rb["SWEEP"], "configs/sweeps/regbench.yaml");
  EXPECT_EQ(rb["RESTORE"], "docs/data/regbench_protocol/call10_runs.tgz ");
  EXPECT_EQ(rb["CHECKPOINTS"], "0");  // beside MQAR the call's files are full
  EXPECT_EQ(std::stoi(rb["LIMIT"]), limit - 25);
  EXPECT_EQ(std::stoi(rb["FINISH_BY"]), limit - 45);

  // Back: the MQAR sweep's files without build.log and tables.md, RegBench's folder as one archive.
  EXPECT_TRUE(util::path_exists(tmp / "out/sw/mqar/ckpt_a.tgz"));
  EXPECT_TRUE(util::path_exists(tmp / "out/sw/mqar/results.csv"));
  EXPECT_FALSE(util::path_exists(tmp / "out/sw/build.log"));
  EXPECT_FALSE(util::path_exists(tmp / "out/sw/mqar/tables.md"));
  const auto listed = run_command("tar tzf " + (tmp / "out/rb.tgz"), 30);
  EXPECT_NE(listed.output.find("rb/regbench/results.csv"), std::string::npos) << listed.output;
  EXPECT_EQ(listed.output.find("ckpt_"), std::string::npos) << listed.output;
}

TEST(GpuProtocol, AWarmMachineRestoresNothingAndRegBenchAloneKeepsItsCheckpoints) {
  TempDir tmp;
  const std::string root = made_up_checkout(tmp);
  util::create_directories(root + "/build-gpu/sweeps/mqar");
  util::create_directories(root + "/build-gpu/sweeps/regbench");

  const auto mqar_alone = run_command(protocol(tmp, root, "SKIP_RB=1 ONLY=bla CALL_LIMIT=200"), 60);
  ASSERT_EQ(mqar_alone.status, 0) << mqar_alone.output;
  auto mqar = settings(tmp / "out/sw/args.txt");
  EXPECT_EQ(mqar["RESTORE"], "");
  EXPECT_EQ(mqar["ONLY"], "bla");
  EXPECT_NE(mqar_alone.output.find("MQAR restores nothing (warm)"), std::string::npos) << mqar_alone.output;
  EXPECT_FALSE(util::path_exists(tmp / "out/rb.tgz"));

  const auto rb_alone = run_command(protocol(tmp, root, "SKIP_MQAR=1 RB_EXPECT=500 CALL_LIMIT=200"), 60);
  ASSERT_EQ(rb_alone.status, 0) << rb_alone.output;
  auto rb = settings(tmp / "rb/args.txt");
  EXPECT_EQ(rb["RESTORE"], "");
  EXPECT_EQ(rb["CHECKPOINTS"], "4");
  EXPECT_EQ(rb["EXPECT"], "500");
  EXPECT_EQ(std::stoi(rb["FINISH_BY"]), std::stoi(rb["LIMIT"]) - 20);  // no stagger without MQAR
  EXPECT_GE(std::stoi(rb["LIMIT"]), 170);
  EXPECT_TRUE(util::path_exists(tmp / "out/rb_ckpt/ckpt_a.tgz"));
}

// BUILD_MORE's targets are built with the sweeps' tools; BEFORE runs after
// the build and before the sweeps (its output in before.log), and its time
// comes out of theirs.
TEST(GpuProtocol, ACheckBeforeTheSweepsTakesItsTimeFromThem) {
  TempDir tmp;
  const std::string root = made_up_checkout(tmp);
  const std::string env =
      "SKIP_RB=1 CALL_LIMIT=300 BUILD_MORE=bla_cuda_tests BEFORE='sleep 4; ls $OUT/sw; echo checked'";
  const auto run = run_command(protocol(tmp, root, env), 120);
  ASSERT_EQ(run.status, 0) << run.output;
  const std::string built = util::read_file(tmp / "out/build.log");
  EXPECT_NE(built.find(" bla-train bla-sweep bla_cuda_tests"), std::string::npos) << built;
  const std::string log = util::read_file(tmp / "out/before.log");
  EXPECT_NE(log.find("checked"), std::string::npos) << log;
  EXPECT_NE(log.find("No such file"), std::string::npos) << log;  // it ran before the MQAR sweep made sw/
  EXPECT_NE(run.output.find("BEFORE exited 0"), std::string::npos) << run.output;
  const int limit = std::stoi(settings(tmp / "out/sw/args.txt")["LIMIT"]);
  EXPECT_GE(limit, 266);  // 300 less 25, less the 4 s of BEFORE and the seconds the script has run
  EXPECT_LE(limit, 271);
}

TEST(GpuProtocol, TooLittleTimeRunsNothing) {
  TempDir tmp;
  const std::string root = made_up_checkout(tmp);
  const auto run = run_command(protocol(tmp, root, "CALL_LIMIT=80"), 60);
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("the sweeps get "), std::string::npos) << run.output;
  EXPECT_FALSE(util::path_exists(tmp / "out/sw"));
  EXPECT_FALSE(util::path_exists(tmp / "rb"));
}
