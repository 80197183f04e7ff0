// Every program ends an error with one line and a documented exit code
// (README, "Exit codes"): argument errors are 2, whatever CLI11 would say;
// numbers out of range are argument errors; the wrong kind of file given as
// a checkpoint is named; no backtrace reaches the terminal.
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

namespace {

using bla::testing::run_command;
using bla::testing::TempDir;

std::string program(const std::string& name) { return "'" + std::string(BLA_BINARY_DIR) + "/src/" + name + "'"; }

int64_t lines_of(const std::string& text) {
  return std::count(text.begin(), text.end(), '\n') + (!text.empty() && text.back() != '\n' ? 1 : 0);
}

// Runs a command that must fail with `status`, printing one line that holds `expected`.
void expect_one_line_error(const std::string& command, int status, const std::string& expected) {
  const auto run = run_command(command, 60);
  EXPECT_EQ(run.status, status) << command << "\n" << run.output;
  EXPECT_EQ(lines_of(run.output), 1) << command << "\n" << run.output;
  EXPECT_NE(run.output.find(expected), std::string::npos) << command << "\n" << run.output;
  EXPECT_EQ(run.output.find("frame #"), std::string::npos) << run.output;  // no LibTorch backtrace
}

TEST(Programs, ArgumentErrorsAreExit2OnOneLine) {
  expect_one_line_error(program("bla-train"), 2, "bla-train: config is required (see bla-train --help)");
  expect_one_line_error(program("bla-train") + " x.yaml --bogus", 2, "bla-train: The following argument was not expected: --bogus");
  expect_one_line_error(program("bla-eval"), 2, "bla-eval: checkpoint is required");
  expect_one_line_error(program("bla-export") + " x.ckpt", 2, "bla-export: --out is required");
  expect_one_line_error(program("bla-generate") + " x.ckpt --prompt 1", 2, "bla-generate: --max-new-tokens is required");
  expect_one_line_error(program("bla-data"), 2, "bla-data: A subcommand is required");
  expect_one_line_error(program("bla-sweep"), 2, "bla-sweep: sweep is required");
  expect_one_line_error(program("bla-sweep") + " s.yaml --jobs 0", 2, "bla-sweep: --jobs: '0' is not an integer in [1, 1024]");
  expect_one_line_error(program("bla-launch") + " -- true", 2, "bla-launch: --nproc-per-node is required");
  expect_one_line_error(program("bla-bench") + " --op nope", 2, "bla-bench: --op must be swa, attention, bla, bla-chunk, gla, gsa, ssd or gatedfwa");
}

TEST(Programs, ARunThatCannotFitItsMemoryIsExit6) {
  TempDir tmp;
  const std::string train = program("bla-train") + " '" + std::string(BLA_SOURCE_DIR) + "/configs/mqar_bla.yaml' --set run.device=cpu" +
                            " --out '" + (tmp / "run") + "'";
  expect_one_line_error(train + " --set run.memory_limit_gb=0.0001", 6, "bla-train: does not fit: this run needs at least ");
  expect_one_line_error(train + " --set run.memory_limit_gb=0.0001 --set 'run.seed=[1, 2]'", 6,
                        "bla-train: does not fit: an ensemble of 2 members needs at least ");
}

TEST(Programs, EvalScoresTheValidationSplitWhereTheConfigHasOne) {
  TempDir tmp;
  bla::util::write_file_atomically(tmp / "tiny.yaml", bla::testing::tiny_mqar_config());
  const std::string train = program("bla-train") + " '" + (tmp / "tiny.yaml") + "' --set train.steps=2 --set train.checkpoint_every=0";
  ASSERT_EQ(run_command(train + " --out '" + (tmp / "with") + "' --set data.validation_examples=16", 120).status, 0);
  ASSERT_EQ(run_command(train + " --out '" + (tmp / "without") + "'", 120).status, 0);
  auto scored = run_command(program("bla-eval") + " '" + (tmp / "with") + "/checkpoints/step-00000002.ckpt' --split validation 2>&1", 120);
  ASSERT_EQ(scored.status, 0) << scored.output;
  EXPECT_NE(scored.output.find("\"split\": \"validation\""), std::string::npos) << scored.output;
  EXPECT_NE(scored.output.find("\"examples\": 16"), std::string::npos) << scored.output;
  expect_one_line_error(program("bla-eval") + " '" + (tmp / "without") + "/checkpoints/step-00000002.ckpt' --split validation", 2,
                        "bla-eval: --split validation: task mqar has no validation examples in this config (e.g. set "
                        "data.validation_examples for mqar)");
}

TEST(Programs, NumbersOutOfRangeAreArgumentErrors) {
  expect_one_line_error(program("bla-generate") + " x.ckpt --prompt 1 --max-new-tokens 18446744073709551616", 2,
                        "--max-new-tokens: '18446744073709551616' is not an integer in [0, 16777216]");
  expect_one_line_error(program("bla-generate") + " x.ckpt --prompt 1 --max-new-tokens 5 --seed -1", 2,
                        "--seed: '-1' is not an integer in [0, 9223372036854775807]");
  expect_one_line_error(program("bla-generate") + " x.ckpt --prompt 1 --max-new-tokens 5 --temperature nan", 2,
                        "--temperature: 'nan' is not a number in [0, 1e+06]");
  expect_one_line_error(program("bla-eval") + " x.ckpt --max-examples 1e3", 2, "--max-examples: '1e3' is not an integer");
  expect_one_line_error(program("bla-bench") + " --reps 99999999999999999999", 2, "bla-bench: --reps wants an integer in [0, 1048576]");
}

TEST(Programs, ConfigErrorsAreExit2OnOneLine) {
  TempDir tmp;
  std::ofstream(tmp / "bad.yaml") << bla::testing::tiny_mqar_config() << "train: {lr: 9.0}\n";
  expect_one_line_error(program("bla-train") + " " + (tmp / "bad.yaml"), 2,
                        "bla-train: config error: " + (tmp / "bad.yaml") + ", line 10: train: duplicate key 'train'");
  std::ofstream(tmp / "good.yaml") << bla::testing::tiny_mqar_config();
  expect_one_line_error(program("bla-train") + " " + (tmp / "good.yaml") + " --set 'model.mixer=[{type: [bla]}]'", 2,
                        "model.mixer: entry 0: 'type' must be a mixer type name");
  expect_one_line_error(program("bla-train") + " " + (tmp / "good.yaml") + " --set run.device=cuda:-1", 2,
                        "run.device: 'cuda:-1' is not a device; accepted: auto, cpu, cuda, cuda:N");
  expect_one_line_error(program("bla-train") + " " + (tmp / "good.yaml") + " --regroup --out " + (tmp / "run"), 2,
                        "bla-train: config error: --regroup applies to ensembles (a member key holding a list, or "
                        "--member) and this is one run");
}

TEST(Programs, WhatIsNotACheckpointIsNamedAsWhatItIs) {
  TempDir tmp;
  std::ofstream(tmp / "config.yaml") << bla::testing::tiny_mqar_config();
  for (const char* name : {"bla-export", "bla-eval", "bla-generate"}) {
    const std::string tail = std::string(name) == "bla-export" ? " --out " + (tmp / "out")
                             : std::string(name) == "bla-generate" ? " --prompt 1 --max-new-tokens 1" : "";
    expect_one_line_error(program(name) + " " + (tmp / "config.yaml") + tail, 3,
                          std::string(name) + ": checkpoint " + (tmp / "config.yaml") + ": is a YAML file, not a checkpoint");
    expect_one_line_error(program(name) + " /dev/zero" + tail, 3,
                          std::string(name) + ": checkpoint /dev/zero: is not a regular file");
    expect_one_line_error(program(name) + " " + tmp.str() + tail, 3, "is a folder, not a checkpoint");
  }
  // bla-train may log its start first; the error is its last line.
  const auto resume = run_command(program("bla-train") + " " + (tmp / "config.yaml") + " --out " + (tmp / "run") +
                                      " --resume /dev/zero",
                                  120);
  EXPECT_EQ(resume.status, 3) << resume.output;
  const std::string last = resume.output.substr(resume.output.rfind('\n', resume.output.size() - 2) + 1);
  EXPECT_EQ(last.rfind("bla-train: checkpoint /dev/zero: is not a regular file", 0), 0u) << resume.output;
}

TEST(Programs, HelpStatesDeviceNeedsAndExitsZero) {
  const std::vector<std::pair<std::string, std::string>> expected{
      {"bla-train", "Runs on the CPU or a CUDA GPU"}, {"bla-eval", "--set run.device=cpu needs no GPU"},
      {"bla-generate", "--set run.device=cpu needs no GPU"}, {"bla-export", "needs no GPU"},
      {"bla-data", "needs no GPU"}, {"bla-sweep", "--gpus, needs a CUDA build"},
      {"bla-bench", "needs a CUDA build and a GPU"}, {"bla-launch", "each rank picks its device"}};
  for (const auto& [name, words] : expected) {
    const auto run = run_command(program(name) + " --help", 30);
    EXPECT_EQ(run.status, 0) << name << "\n" << run.output;
    std::string flat = run.output;
    for (auto& c : flat) c = c == '\n' ? ' ' : c;
    while (flat.find("  ") != std::string::npos) flat.replace(flat.find("  "), 2, " ");
    EXPECT_NE(flat.find(words), std::string::npos) << name << "\n" << run.output;
  }
}

#ifndef BLA_HAVE_CUDA_KERNELS
TEST(Programs, BenchWithoutCudaSaysWhatItNeeds) {
  expect_one_line_error(program("bla-bench"), 1, "bla-bench needs a CUDA build and a GPU");
}
#endif

}  // namespace
