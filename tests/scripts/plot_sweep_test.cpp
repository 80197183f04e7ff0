// scripts/plot_sweep.py on made-up results.csv files: the learning rate of a
// point is chosen on the validation column when there is one (never on the
// test metric it reports), and the output says which; a point shows the
// bootstrap interval over its seeds; the headline table gives the state at
// which each group crosses a threshold and the ratio of two groups', with
// intervals that widen when a seed fails; reference lines from a baseline
// file, and the exact error for one that does not fit.
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

using bla::testing::have_python;
using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

const std::string kScript = std::string(BLA_SOURCE_DIR) + "/scripts/plot_sweep.py";

// One state size, two learning rates, two seeds each: validation prefers 1e-3, the test metric 3e-3.
const char* const kHeader =
    "name,group,status,action,exit_code,train.lr,run.seed,task,steps,test_accuracy,validation_accuracy,parameters,"
    "state_total\n";
const char* const kRows =
    "a,bla,done,ran,0,1e-3,1,mqar,10,0.70,0.90,100,512\n"
    "b,bla,done,ran,0,1e-3,2,mqar,10,0.72,0.92,100,512\n"
    "c,bla,done,ran,0,3e-3,1,mqar,10,0.95,0.80,100,512\n"
    "d,bla,done,ran,0,3e-3,2,mqar,10,0.97,0.82,100,512\n";

// Three seeds of bla and swa. Every seed of bla crosses 0.5 at 512, 0.9 at 1024 and 0.99 at 4096 (its
// largest state); every seed of swa crosses 0.5 at 1024 and 0.9 at 4096, and none reaches 0.99 (0.97 at
// most, at 8192).
const char* const kSweep =
    "name,group,status,action,exit_code,train.lr,run.seed,task,steps,test_accuracy,parameters,state_total\n"
    "bla-256-1,bla,done,ran,0,1e-3,1,mqar,10,0.40,100,256\n"
    "bla-256-2,bla,done,ran,0,1e-3,2,mqar,10,0.42,100,256\n"
    "bla-256-3,bla,done,ran,0,1e-3,3,mqar,10,0.44,100,256\n"
    "bla-512-1,bla,done,ran,0,1e-3,1,mqar,10,0.70,100,512\n"
    "bla-512-2,bla,done,ran,0,1e-3,2,mqar,10,0.72,100,512\n"
    "bla-512-3,bla,done,ran,0,1e-3,3,mqar,10,0.74,100,512\n"
    "bla-1024-1,bla,done,ran,0,1e-3,1,mqar,10,0.93,100,1024\n"
    "bla-1024-2,bla,done,ran,0,1e-3,2,mqar,10,0.94,100,1024\n"
    "bla-1024-3,bla,done,ran,0,1e-3,3,mqar,10,0.95,100,1024\n"
    "bla-2048-1,bla,done,ran,0,1e-3,1,mqar,10,0.97,100,2048\n"
    "bla-2048-2,bla,done,ran,0,1e-3,2,mqar,10,0.98,100,2048\n"
    "bla-2048-3,bla,done,ran,0,1e-3,3,mqar,10,0.98,100,2048\n"
    "bla-4096-1,bla,done,ran,0,1e-3,1,mqar,10,0.992,100,4096\n"
    "bla-4096-2,bla,done,ran,0,1e-3,2,mqar,10,0.996,100,4096\n"
    "bla-4096-3,bla,done,ran,0,1e-3,3,mqar,10,1.00,100,4096\n"
    "swa-256-1,swa,done,ran,0,1e-3,1,mqar,10,0.10,100,256\n"
    "swa-256-2,swa,done,ran,0,1e-3,2,mqar,10,0.11,100,256\n"
    "swa-256-3,swa,done,ran,0,1e-3,3,mqar,10,0.12,100,256\n"
    "swa-512-1,swa,done,ran,0,1e-3,1,mqar,10,0.20,100,512\n"
    "swa-512-2,swa,done,ran,0,1e-3,2,mqar,10,0.21,100,512\n"
    "swa-512-3,swa,done,ran,0,1e-3,3,mqar,10,0.22,100,512\n"
    "swa-1024-1,swa,done,ran,0,1e-3,1,mqar,10,0.55,100,1024\n"
    "swa-1024-2,swa,done,ran,0,1e-3,2,mqar,10,0.56,100,1024\n"
    "swa-1024-3,swa,done,ran,0,1e-3,3,mqar,10,0.57,100,1024\n"
    "swa-2048-1,swa,done,ran,0,1e-3,1,mqar,10,0.80,100,2048\n"
    "swa-2048-2,swa,done,ran,0,1e-3,2,mqar,10,0.82,100,2048\n"
    "swa-2048-3,swa,done,ran,0,1e-3,3,mqar,10,0.84,100,2048\n"
    "swa-4096-1,swa,done,ran,0,1e-3,1,mqar,10,0.91,100,4096\n"
    "swa-4096-2,swa,done,ran,0,1e-3,2,mqar,10,0.92,100,4096\n"
    "swa-4096-3,swa,done,ran,0,1e-3,3,mqar,10,0.93,100,4096\n"
    "swa-8192-1,swa,done,ran,0,1e-3,1,mqar,10,0.95,100,8192\n"
    "swa-8192-2,swa,done,ran,0,1e-3,2,mqar,10,0.96,100,8192\n"
    "swa-8192-3,swa,done,ran,0,1e-3,3,mqar,10,0.97,100,8192\n";

// Writes csv to a results.csv in tmp and runs the script on it (tables only).
bla::testing::CommandOutcome plot_sweep(const TempDir& tmp, const std::string& csv, const std::string& options = "") {
  util::write_file_atomically(tmp / "results.csv", csv);
  return run_command("python3 " + kScript + " " + (tmp / "results.csv") + " --no-plot " + options, 60);
}

}  // namespace

TEST(PlotSweep, TheLearningRateIsChosenOnValidationAndTheTestMetricReported) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const auto result = plot_sweep(tmp, std::string(kHeader) + kRows);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("(learning rate chosen on validation_accuracy; test_accuracy reported)"),
            std::string::npos)
      << result.output;
  // The mean over the two seeds, its bootstrap interval (the two seeds' values: a quarter of the replicates
  // each), and a warning that two seeds make a poor interval.
  EXPECT_NE(result.output.find("| 512 | 0.710 [0.700, 0.720] (lr 1e-3, 2 seeds) |"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("(fewer than 3 seeds at the chosen learning rate: bla (1 of 1 states, fewest 2); "
                               "intervals over so few seeds mean little)"),
            std::string::npos)
      << result.output;
}

// After a sweep file's select (seed 1 tried both rates, seeds 2 and 3 ran at the one it chose): the choice is
// made on seed 1, the seed both rates have, as bla-sweep made it, even though the chosen rate's other seeds
// score lower on validation than the other rate's seed 1; its three seeds are reported.
TEST(PlotSweep, AfterASelectTheRateIsChosenOnTheSeedsEveryRateHas) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const auto result = plot_sweep(tmp, std::string(kHeader) +
                                           "a,bla,done,ran,0,1e-3,1,mqar,10,0.70,0.90,100,512\n"
                                           "b,bla,done,ran,0,1e-3,2,mqar,10,0.60,0.50,100,512\n"
                                           "c,bla,done,ran,0,1e-3,3,mqar,10,0.62,0.50,100,512\n"
                                           "d,bla,done,ran,0,3e-3,1,mqar,10,0.95,0.85,100,512\n");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("| 512 | 0.640 [0.600, 0.700] (lr 1e-3, 3 seeds) |"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("(at 1 state points the rate was chosen on seed(s) 1 alone, the seeds every rate "
                               "there has, as a sweep file's select chooses; the other seeds ran at the chosen rate)"),
            std::string::npos)
      << result.output;
}

// A chosen rate that is the largest (or smallest) of the rates tried at its state is named: the grid may not
// hold the best rate there. A rate chosen between two others is not.
TEST(PlotSweep, AChosenRateAtTheEdgeOfTheRatesTriedIsSaid) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const auto result = plot_sweep(tmp, std::string(kHeader) +
                                           "a,bla,done,ran,0,1e-3,1,mqar,10,0.50,0.50,100,512\n"
                                           "b,bla,done,ran,0,3e-3,1,mqar,10,0.60,0.60,100,512\n"
                                           "c,bla,done,ran,0,1e-2,1,mqar,10,0.70,0.70,100,512\n"
                                           "d,bla,done,ran,0,1e-3,1,mqar,10,0.80,0.80,100,1024\n"
                                           "e,bla,done,ran,0,3e-3,1,mqar,10,0.90,0.90,100,1024\n"
                                           "f,bla,done,ran,0,1e-2,1,mqar,10,0.85,0.85,100,1024\n"
                                           "g,swa,done,ran,0,1e-3,1,mqar,10,0.90,0.90,100,512\n"
                                           "h,swa,done,ran,0,3e-3,1,mqar,10,0.20,0.20,100,512\n");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("(the chosen learning rate is the largest tried at bla 512 (task mqar); the smallest "
                               "tried at swa 512 (task mqar): the rates tried may not hold the best one there)"),
            std::string::npos)
      << result.output;
  EXPECT_EQ(result.output.find("bla 1,024"), std::string::npos) << result.output;
}

TEST(PlotSweep, WithoutAValidationColumnItSaysTheChoiceIsOnTheTestSet) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  std::string csv = "name,group,status,action,exit_code,train.lr,run.seed,task,steps,test_accuracy,parameters,state_total\n"
                    "a,bla,done,ran,0,1e-3,1,mqar,10,0.70,100,512\n"
                    "c,bla,done,ran,0,3e-3,1,mqar,10,0.95,100,512\n";
  const auto result = plot_sweep(tmp, csv);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("this is a choice on the test set"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("| 512 | 0.950 (lr 3e-3) |"), std::string::npos) << result.output;
}

TEST(PlotSweep, TheHeadlineGivesTheStateEachGroupNeedsAndTheirRatio) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const auto result = plot_sweep(tmp, kSweep);
  ASSERT_EQ(result.status, 0) << result.output;
  // A point: the mean of its 3 seeds and the bootstrap interval (the lowest and highest seeds: 1 in 27 each).
  EXPECT_NE(result.output.find("| 1,024 | 0.940 [0.930, 0.950] (lr 1e-3, 3 seeds) | 0.560 [0.550, 0.570] (lr 1e-3, "
                               "3 seeds) |"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("Headline: the smallest state whose mean test_accuracy over seeds is >= the "
                               "threshold (the curve is not assumed monotone)"),
            std::string::npos)
      << result.output;
  // Every seed crosses at the same state, so every replicate does: intervals of one state, one ratio.
  EXPECT_NE(result.output.find("| threshold | bla | swa | swa/bla |\n| --- | --- | --- | --- |\n"
                               "| 0.5 | 512 [512, 512] | 1,024 [1,024, 1,024] | 2.00 [2.00, 2.00] |\n"
                               "| 0.9 | 1,024 [1,024, 1,024] | 4,096 [4,096, 4,096] | 4.00 [4.00, 4.00] |\n"),
            std::string::npos)
      << result.output;
  EXPECT_EQ(result.output.find("fewer than 3 seeds"), std::string::npos) << result.output;
  // A fixed bootstrap seed: the same output every time.
  EXPECT_EQ(plot_sweep(tmp, kSweep).output, result.output);
}

// The interpolated table: straight between neighbouring states on a log-state axis. Seeds that agree give
// every replicate the same crossing. bla reaches 0.5 a quarter of the way from 256 (0.4) to 1024 (0.8) in
// log-state, 256 * 4^0.25 = 362; swa half-way from 1024 (0.3) to 4096 (0.7), 2048: 5.66x bla's. At 0.35
// bla crosses at its smallest state (a bound on the ratio), swa an eighth of the way, 1024 * 4^0.125 = 1,217;
// 0.9 neither reaches.
TEST(PlotSweep, TheInterpolatedTableReadsTheCrossingsBetweenGridStates) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  std::string csv = "name,group,status,action,exit_code,train.lr,run.seed,task,steps,test_accuracy,parameters,"
                    "state_total\n";
  for (const auto& [group, state, accuracy] : std::vector<std::tuple<std::string, int, std::string>>{
           {"bla", 256, "0.4"}, {"bla", 1024, "0.8"}, {"swa", 256, "0.2"}, {"swa", 1024, "0.3"}, {"swa", 4096, "0.7"}}) {
    for (int seed = 1; seed <= 3; ++seed) {
      csv += group + "-" + std::to_string(state) + "-" + std::to_string(seed) + "," + group + ",done,ran,0,1e-3," +
             std::to_string(seed) + ",mqar,10," + accuracy + ",100," + std::to_string(state) + "\n";
    }
  }
  const auto result = plot_sweep(tmp, csv, "--thresholds 0.35,0.5,0.9");
  ASSERT_EQ(result.status, 0) << result.output;
  const size_t table = result.output.find("Interpolated: where the curve of mean test_accuracy over seeds, drawn "
                                          "straight between neighbouring states on a log-state axis");
  ASSERT_NE(table, std::string::npos) << result.output;
  EXPECT_NE(result.output.find("| threshold | bla | swa | swa/bla |\n| --- | --- | --- | --- |\n"
                               "| 0.35 | <= 256 | 1,217 [1,217, 1,217] | >= 4.76 [4.76, 4.76] |\n"
                               "| 0.5 | 362 [362, 362] | 2,048 [2,048, 2,048] | 5.66 [5.66, 5.66] |\n"
                               "| 0.9 | not reached | not reached | neither reaches it |\n",
                               table),
            std::string::npos)
      << result.output;
  // The grid's table before it: the smallest states that reach each threshold.
  EXPECT_NE(result.output.find("| 0.5 | 1,024 [1,024, 1,024] | 4,096 [4,096, 4,096] | 4.00 [4.00, 4.00] |"),
            std::string::npos)
      << result.output;
}

TEST(PlotSweep, OneSeedFailingAtTheCrossingWidensTheIntervalToTheNextState) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  // bla's third seed at 1024 reaches 0.85 only: the mean (0.907) still crosses 0.9 there, but a replicate
  // that draws that seed twice or more (7 in 27) does not, and crosses at 2048 instead.
  std::string csv = kSweep;
  const std::string seed = "bla-1024-3,bla,done,ran,0,1e-3,3,mqar,10,0.95,";
  csv.replace(csv.find(seed), seed.size(), "bla-1024-3,bla,done,ran,0,1e-3,3,mqar,10,0.85,");
  const auto result = plot_sweep(tmp, csv);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("| 1,024 | 0.907 [0.850, 0.940] (lr 1e-3, 3 seeds) |"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("| 0.9 | 1,024 [1,024, 2,048] | 4,096 [4,096, 4,096] | 4.00 [2.00, 4.00] |"),
            std::string::npos)
      << result.output;
}

TEST(PlotSweep, AGroupThatNeverReachesAThresholdIsNotReached) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  // swa never reaches 0.99: the ratio is a bound (swa needs more than its largest state, 8192, over 4096).
  auto result = plot_sweep(tmp, kSweep);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("| 0.99 | 4,096 [4,096, 4,096] | not reached | > 2.00 |"), std::string::npos)
      << result.output;
  // swa's mean at 8192 (0.96) misses 0.965, but the replicates that draw its best seed (0.97) two or three
  // times (4 in 27) reach it there: the interval runs from 8192 to "not reached", the ratio's from 8192 / 2048
  // to infinity.
  result = plot_sweep(tmp, kSweep, "--thresholds 0.965");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(
      result.output.find("| 0.965 | 2,048 [2,048, 2,048] | not reached [8,192, > 8,192] | > 4.00 [4.00, inf] |"),
      std::string::npos)
      << result.output;
}

// Drops the rows of a group's states below `below` from a results.csv text.
std::string without_states_below(const std::string& csv, const std::string& group, int below) {
  std::string out;
  size_t start = 0;
  while (start < csv.size()) {
    const size_t end = csv.find('\n', start);
    const std::string line = csv.substr(start, end - start + 1);
    start = end + 1;
    const bool row_of_group = line.rfind(group + "-", 0) == 0;
    const int state = row_of_group ? std::stoi(line.substr(line.rfind(',') + 1)) : 0;
    if (!(row_of_group && state < below)) out += line;
  }
  return out;
}

TEST(PlotSweep, ACrossingAtAGroupsSmallestStateIsAnUpperBoundAndItsRatioABound) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  // bla without its state 256: it crosses 0.5 at 512, now its smallest state, so it may cross lower and swa's
  // 1024 over it is a lower bound; at 0.9 (1024) nothing changes.
  auto result = plot_sweep(tmp, without_states_below(kSweep, "bla", 512));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("| 0.5 | <= 512 | 1,024 [1,024, 1,024] | >= 2.00 [2.00, 2.00] |\n"
                               "| 0.9 | 1,024 [1,024, 1,024] | 4,096 [4,096, 4,096] | 4.00 [4.00, 4.00] |"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("<= N: reached at the group's smallest state N, so it may be reached below it"),
            std::string::npos)
      << result.output;
  // swa from 1024 up: its crossing of 0.5 is the bound, so the ratio is an upper bound.
  result = plot_sweep(tmp, without_states_below(kSweep, "swa", 1024));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("| 0.5 | 512 [512, 512] | <= 1,024 | <= 2.00 [2.00, 2.00] |"), std::string::npos)
      << result.output;
  // Both: nothing can be said of the ratio.
  result = plot_sweep(tmp, without_states_below(without_states_below(kSweep, "swa", 1024), "bla", 512));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("| 0.5 | <= 512 | <= 1,024 | unknown (both cross at their smallest states) |"),
            std::string::npos)
      << result.output;
}

TEST(PlotSweep, ARatioOfAGroupTheSweepLacksIsLeftOutAndSaid) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const auto result = plot_sweep(tmp, kSweep, "--ratio gla/bla");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("| threshold | bla | swa |\n"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("| 0.9 | 1,024 [1,024, 1,024] | 4,096 [4,096, 4,096] |\n"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("(no gla/bla ratio: this table has no group gla)"), std::string::npos)
      << result.output;
}

TEST(PlotSweep, ReferenceLinesFromABaselineFileArePrintedWithTheThresholdsTheyReach) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const std::string file = tmp / "ngram.json";
  util::write_file_atomically(file, R"({"split": "test", "predictors": {"ngram-1": {"accuracy": 0.47, "tvd": 0.6},)"
                                    R"( "ngram-3": {"accuracy": 0.936, "tvd": 0.2}}})");
  const auto result = plot_sweep(tmp, kSweep, "--reference " + file);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("Reference lines (" + file +
                               ", test split): ngram-1 0.470; ngram-3 0.936 (reaches 0.5, 0.9)\n"),
            std::string::npos)
      << result.output;
}

TEST(PlotSweep, AReferenceFileOnAnotherSplitOrWithoutTheMetricIsRefusedSayingWhy) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const std::string file = tmp / "ngram.json";
  util::write_file_atomically(file, R"({"split": "validation", "predictors": {"ngram-1": {"accuracy": 0.47}}})");
  auto result = plot_sweep(tmp, kSweep, "--reference " + file);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.output.find("plot_sweep: --reference " + file +
                               " is on the 'validation' split; the sweep's metric is on the test split: run "
                               "bla-baseline on the test split"),
            std::string::npos)
      << result.output;
  util::write_file_atomically(file, R"({"split": "test", "predictors": {"ngram-1": {"tvd": 0.6}}})");
  result = plot_sweep(tmp, kSweep, "--reference " + file);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(
      result.output.find("plot_sweep: --reference " + file +
                         ": predictor 'ngram-1' has no 'accuracy' (for --metric test_accuracy); its metrics: tvd"),
      std::string::npos)
      << result.output;
}

// --points: a table of every point (a configuration but for its rate and seed), here two windows of one
// group at one state, which the state table reduces to the better one. Each row gives validation at every
// rate on the seeds every rate has (seed 1: the chosen rate's seeds 2 and 3 score lower on validation than
// the other rate's seed 1, and do not change the choice), the chosen rate in bold, and the test metric of
// the chosen rate's seeds: the mean, its bootstrap interval and each seed, or the one seed.
TEST(PlotSweep, EveryPointTableGivesEachConfigurationsRatesAndSeeds) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const std::string csv =
      "name,group,status,action,exit_code,model.mixers.bla.window,train.lr,run.seed,task,steps,test_accuracy,"
      "validation_accuracy,parameters,state_total\n"
      "a,bla_window,done,ran,0,128,1e-3,1,mqar,10,0.91,0.90,100,512\n"
      "b,bla_window,done,ran,0,128,3e-3,1,mqar,10,0.94,0.95,100,512\n"
      "c,bla_window,done,ran,0,128,3e-3,2,mqar,10,0.96,0.50,100,512\n"
      "d,bla_window,done,ran,0,128,3e-3,3,mqar,10,0.98,0.50,100,512\n"
      "e,bla_window,done,ran,0,64,1e-3,1,mqar,10,0.79,0.80,100,512\n"
      "f,bla_window,done,ran,0,64,3e-3,1,mqar,10,0.72,0.70,100,512\n";
  const auto result = plot_sweep(tmp, csv, "--points");
  ASSERT_EQ(result.status, 0) << result.output;
  const auto first = result.output.find(
      "| bla_window | window 128 | 512 | 1e-3: 0.900 / **3e-3: 0.950** | 3e-3 | "
      "0.960 [0.940, 0.980] (0.940, 0.960, 0.980), 3 seeds |");
  const auto second =
      result.output.find("| bla_window | window 64 | 512 | **1e-3: 0.800** / 3e-3: 0.700 | 1e-3 | 0.790 (seed 1) |");
  EXPECT_NE(first, std::string::npos) << result.output;
  EXPECT_NE(second, std::string::npos) << result.output;
  EXPECT_LT(first, second) << "points in the grid's order, largest first";
  // The state table keeps the better of the two at 512, as before.
  EXPECT_NE(result.output.find("| 512 | 0.960 [0.940, 0.980] (lr 3e-3, 3 seeds) |"), std::string::npos)
      << result.output;
  const auto without = plot_sweep(tmp, csv);
  EXPECT_EQ(without.output.find("Every point:"), std::string::npos) << without.output;
}
