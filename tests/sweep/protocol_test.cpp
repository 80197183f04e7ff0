// The MQAR and RegBench protocols' pipelines on the CPU, end to end
// (configs/sweeps/mqar_ci.yaml, regbench_ci.yaml): bla-sweep trains each state
// point's learning rates x seeds as ensembles with validation (for MQAR with
// early stopping, and in two stages: seed 1 at every rate, then the other
// seeds at the rate it chose, in waves), and plot_sweep.py chooses the rate on validation and
// prints the curves with intervals over seeds and the headline.
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

using bla::testing::run_command;
using bla::testing::TempDir;

namespace {

const std::string kSource = BLA_SOURCE_DIR;

// bla-sweep on configs/sweeps/<name> into `out`, two runs at a time, every
// point finishing: `points` new points in `ensembles` processes; with a
// select, in `waves` waves of two of those processes each (sweep/waves.h).
void expect_sweep_runs(const std::string& name, const std::string& out, int points, int ensembles, int waves = 0) {
  auto sweep = run_command(std::string(BLA_BINARY_DIR) + "/src/bla-sweep " + kSource + "/configs/sweeps/" + name +
                               " --out " + out + " --jobs 2 --bla-train " + BLA_BINARY_DIR + "/src/bla-train",
                           600);
  ASSERT_EQ(sweep.status, 0) << sweep.output;
  const std::string n = std::to_string(points), e = std::to_string(ensembles);
  if (waves == 0) {
    EXPECT_NE(sweep.output.find(n + " points: 0 done already (skipped), 0 to resume, " + n + " new; " + e +
                                " processes (" + e + " ensembles"),
              std::string::npos)
        << sweep.output;
    EXPECT_NE(sweep.output.find(n + " ran, 0 failed"), std::string::npos) << sweep.output;
    return;
  }
  const std::string per_wave = std::to_string(points / waves);
  for (int wave = 1; wave <= waves; ++wave) {
    EXPECT_NE(sweep.output.find("bla-sweep: wave " + std::to_string(wave) + ": 2 processes (2 ensembles), " +
                                per_wave + " points (0 to resume, " + per_wave + " new)"),
              std::string::npos)
        << "wave " << wave << ": " << sweep.output;
  }
  EXPECT_NE(sweep.output.find("(" + std::to_string(waves) + " waves): " + n + " ran, 0 not done"), std::string::npos)
      << sweep.output;
  EXPECT_EQ(2 * waves, ensembles);
}

// plot_sweep.py's tables and headline for the sweep in `out`, the learning
// rate chosen on validation.
std::string plot_tables(const std::string& out) {
  auto plot = run_command("python3 " + kSource + "/scripts/plot_sweep.py " + out + "/results.csv --no-plot", 120);
  EXPECT_EQ(plot.status, 0) << plot.output;
  EXPECT_NE(plot.output.find("(learning rate chosen on validation_accuracy; test_accuracy reported)"),
            std::string::npos)
      << plot.output;
  return plot.output;
}

}  // namespace

TEST(SweepProtocol, TheMqarPipelineRunsEndToEndOnTheCpu) {
  if (run_command("python3 --version", 30).status != 0) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const std::string out = tmp / "sweep";
  // select: seed 1 tries both rates at each of the 6 state points, then seeds 2 and 3 run at the chosen one:
  // 24 points in 12 ensembles of 2, two at a time, 6 waves.
  expect_sweep_runs("mqar_ci.yaml", out, 24, 12, 6);
  // Every point's summary holds its final validation and test results.
  std::istringstream csv(bla::util::read_file(out + "/results.csv"));
  std::string header, row;
  std::getline(csv, header);
  int rows = 0;
  while (std::getline(csv, row)) ++rows;
  EXPECT_EQ(rows, 24);
  EXPECT_NE(header.find("validation_accuracy"), std::string::npos) << header;

  const auto plot = plot_tables(out);
  EXPECT_NE(plot.find("3 seeds)"), std::string::npos) << plot;  // intervals over the three seeds
  EXPECT_NE(plot.find("(at 6 state points the rate was chosen on seed(s) 1 alone"), std::string::npos) << plot;
  EXPECT_NE(plot.find("| threshold | bla | swa | swa/bla |"), std::string::npos) << plot;
  EXPECT_NE(plot.find("| 0.99 |"), std::string::npos) << plot;
}

TEST(SweepProtocol, TheRegBenchPipelineRunsEndToEndOnTheCpu) {
  if (run_command("python3 --version", 30).status != 0) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const std::string out = tmp / "sweep";
  // Members of one ensemble draw batches of different lengths (rows pad to the longest in a batch).
  expect_sweep_runs("regbench_ci.yaml", out, 30, 5);
  const std::string header = bla::util::read_file(out + "/results.csv").substr(0, 2000);
  for (const char* column : {"validation_accuracy", "test_accuracy", "test_tvd", "test_tvd_seq_icl"})
    EXPECT_NE(header.find(column), std::string::npos) << column << " in " << header;

  const auto plot = plot_tables(out);
  EXPECT_NE(plot.find("| state (numbers) | bla | swa | attention |"), std::string::npos) << plot;
  EXPECT_NE(plot.find("| threshold | bla | swa | attention | swa/bla |"), std::string::npos) << plot;
}
