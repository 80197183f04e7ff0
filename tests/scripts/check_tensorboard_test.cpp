// scripts/check_tensorboard.py where no tensorboard is installed (CI): its
// usage error and the exit code that says nothing was checked. Where
// tensorboard is installed, scripts/gpu_python.sh's machine, it is run on a
// real run instead (docs/data/python_gpu/run5_check_tensorboard.txt).
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <string>

using bla::testing::have_python;
using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

const std::string kScript = std::string(BLA_SOURCE_DIR) + "/scripts/check_tensorboard.py";

}  // namespace

TEST(CheckTensorboard, ExitCodesWithoutTensorboard) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  if (run_command("python3 -c 'import tensorboard'", 60).status == 0)
    GTEST_SKIP() << "tensorboard is installed here";
  TempDir tmp;
  const auto usage = run_command("python3 " + kScript + " " + (tmp / "nowhere"), 60);
  EXPECT_EQ(usage.status, 2);
  EXPECT_NE(usage.output.find("usage: check_tensorboard.py RUN_DIR"), std::string::npos) << usage.output;
  util::write_file_atomically(tmp / "metrics.jsonl", R"({"step": 1, "split": "train", "loss": 1.0})" "\n");
  const auto missing = run_command("python3 " + kScript + " " + tmp.str(), 60);
  EXPECT_EQ(missing.status, 4);
  EXPECT_NE(missing.output.find("tensorboard is not installed: nothing checked"), std::string::npos)
      << missing.output;
}
