// scripts/gpu_profile_step.sh on the CPU (SKIP_BUILD=1 with this build's
// bla-train): each named run trains with its own keys, its profile.txt comes
// back as NAME.txt beside its log, and a run that fails is named with its last
// lines and exit status 1.
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <string>

using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

const std::string kScript = std::string(BLA_SOURCE_DIR) + "/scripts/gpu_profile_step.sh";

std::string profile_command(const TempDir& tmp, const std::string& specs) {
  return "env SKIP_BUILD=1 BUILD_DIR=" + std::string(BLA_BINARY_DIR) + " OUT=" + (tmp / "out") +
         " STEPS=12 PROFILE_STEPS=2 " + kScript + " " + specs;
}

}  // namespace

TEST(GpuProfileStep, EachNamedRunLeavesItsProfileAndLog) {
  TempDir tmp;
  const std::string keys = ",run.device=cpu,train.batch_size=4,train.log_every=6,train.eval_examples=8";
  const auto run = run_command(profile_command(tmp, "small=configs/mqar_attention.yaml" + keys + " swa=configs/mqar_attention.yaml" +
                                                        keys + ",model.mixer=swa,model.mixers.swa.window=8"),
                               300);
  ASSERT_EQ(run.status, 0) << run.output;
  for (const std::string name : {"small", "swa"}) {
    const std::string profile = util::read_file(tmp / ("out/" + name + ".txt"));
    EXPECT_NE(profile.find("steps 11..12 (2 profiled)"), std::string::npos) << name << ": " << profile;
    EXPECT_NE(profile.find("host operators, by total time"), std::string::npos) << name << ": " << profile;
    EXPECT_NE(run.output.find("== " + name + "\n"), std::string::npos) << run.output;
  }
  EXPECT_NE(util::read_file(tmp / "out/swa.log").find("step 12/12"), std::string::npos);
}

TEST(GpuProfileStep, AFailingRunIsNamedAndTheStatusIsOne) {
  TempDir tmp;
  const auto run = run_command(profile_command(tmp, "bad=configs/mqar_attention.yaml,run.device=cpu,train.lr=fast"), 120);
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_NE(run.output.find("== bad: failed (rc 2), last lines of " + (tmp / "out/bad.log") + ":"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("train.lr"), std::string::npos) << run.output;
}
