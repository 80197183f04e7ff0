// scripts/plot_run.py on a made-up run directory: the text table it prints
// with --no-plot (which needs no matplotlib), and its errors.
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <string>

using bla::testing::have_python;
using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

const std::string kScript = std::string(BLA_SOURCE_DIR) + "/scripts/plot_run.py";

// Two log steps and one evaluation, then a line cut short (a run still writing).
const char* const kMetrics =
    R"({"step": 50, "split": "train", "loss": 4.5, "accuracy": 0.05, "lr": 0.0015, "grad_norm": 2.5, "tokens": 51200, "tokens_per_s": 40000, "elapsed_s": 1.3})"
    "\n"
    R"({"step": 100, "split": "train", "loss": 3.25, "accuracy": 0.375, "lr": 0.003, "grad_norm": 1.5, "tokens": 102400, "tokens_per_s": 50000, "elapsed_s": 2.3})"
    "\n"
    R"({"step": 100, "split": "test", "accuracy": 0.5, "examples": 500, "loss": 3.0})"
    "\n"
    R"({"step": 150, "split": "tr)";

}  // namespace

TEST(PlotRun, NoPlotPrintsFinalAndBestValues) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  util::create_directories(tmp / "mqar_bla");
  util::write_file_atomically(tmp / "mqar_bla/metrics.jsonl", kMetrics);
  const auto result = run_command("python3 " + kScript + " " + (tmp / "mqar_bla") + " --no-plot", 60);
  ASSERT_EQ(result.status, 0) << result.output;
  // run | steps | train loss | train accuracy | test loss | test accuracy | tokens/s (mean)
  EXPECT_NE(result.output.find("| mqar_bla | 100 | 3.2500 (3.2500) | 0.3750 (0.3750) | 3.0000 (3.0000) | "
                               "0.5000 (0.5000) | 45,000 |"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("line 4: not JSON"), std::string::npos) << result.output;
  EXPECT_FALSE(util::path_exists(tmp / "mqar_bla/plots"));
}

TEST(PlotRun, MissingRunIsNamed) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const auto result = run_command("python3 " + kScript + " " + (tmp / "nowhere") + " --no-plot", 60);
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find(tmp / "nowhere/metrics.jsonl"), std::string::npos) << result.output;
}
