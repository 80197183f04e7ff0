// scripts/plot_sweep.py on a made-up results.csv: the learning rate of a
// point is chosen on the validation column when there is one (never on the
// test metric it reports), and the output says which.
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <string>

using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

const std::string kScript = std::string(BLA_SOURCE_DIR) + "/scripts/plot_sweep.py";

bool have_python() { return run_command("python3 --version", 30).status == 0; }

// One state size, two learning rates, two seeds each: validation prefers 1e-3, the test metric 3e-3.
const char* const kHeader =
    "name,group,status,action,exit_code,train.lr,run.seed,task,steps,test_accuracy,validation_accuracy,parameters,"
    "state_total\n";
const char* const kRows =
    "a,bla,done,ran,0,1e-3,1,mqar,10,0.70,0.90,100,512\n"
    "b,bla,done,ran,0,1e-3,2,mqar,10,0.72,0.92,100,512\n"
    "c,bla,done,ran,0,3e-3,1,mqar,10,0.95,0.80,100,512\n"
    "d,bla,done,ran,0,3e-3,2,mqar,10,0.97,0.82,100,512\n";

}  // namespace

TEST(PlotSweep, TheLearningRateIsChosenOnValidationAndTheTestMetricReported) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  util::write_file_atomically(tmp / "results.csv", std::string(kHeader) + kRows);
  const auto result = run_command("python3 " + kScript + " " + (tmp / "results.csv") + " --no-plot", 60);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("(learning rate chosen on validation_accuracy; test_accuracy reported)"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("| 512 | 0.710 (lr 1e-3) [2 seeds] |"), std::string::npos) << result.output;
}

TEST(PlotSweep, WithoutAValidationColumnItSaysTheChoiceIsOnTheTestSet) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  std::string csv = "name,group,status,action,exit_code,train.lr,run.seed,task,steps,test_accuracy,parameters,state_total\n"
                    "a,bla,done,ran,0,1e-3,1,mqar,10,0.70,100,512\n"
                    "c,bla,done,ran,0,3e-3,1,mqar,10,0.95,100,512\n";
  util::write_file_atomically(tmp / "results.csv", csv);
  const auto result = run_command("python3 " + kScript + " " + (tmp / "results.csv") + " --no-plot", 60);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("this is a choice on the test set"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("| 512 | 0.950 (lr 3e-3) |"), std::string::npos) << result.output;
}
