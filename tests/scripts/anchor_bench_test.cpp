// scripts/anchor_bench.py on a stand-in for the anchors' bench.py: its task
// list gains the op table's D = 128 shape for every Triton and Inductor op,
// once, keeps only the shapes --shapes names, its arguments pass through,
// and the compile worker it starts from its own __file__ (as bench.py's
// parallel_warm does) sees the same tasks.
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <string>

using bla::testing::have_python;
using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

const std::string kScript = std::string(BLA_SOURCE_DIR) + "/scripts/anchor_bench.py";

// bench.py's shape: a module-level TASKS list read by main(); main() with
// --warm is a compile worker, without it starts one from __file__.
const char* const kStandIn = R"(import subprocess, sys
from pathlib import Path
TASKS = [('sdpa_cudnn', 'B4_T8192_H16_D128'), ('fla_chunk_gla', 'B4_T8192_H16_D64'),
         ('flex_swa_W512', 'B4_T8192_H16_D128')]
def main():
    tasks = ' '.join(op + '@' + shape for op, shape in TASKS)
    if '--warm' in sys.argv:
        print('worker tasks:', tasks)
        return
    print('args:', ' '.join(sys.argv[1:]))
    print('tasks:', tasks)
    sys.stdout.flush()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), '--warm', 'fla_chunk_gla'], check=True)
)";

}  // namespace

TEST(AnchorBench, AddsTheD128TasksOnceAndItsCompileWorkersSeeThem) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  util::write_file_atomically(tmp / "bench.py", kStandIn);
  const std::string run = "env -u ANCHOR_BENCH_SHAPES ANCHORS=" + tmp.str() + " python3 " + kScript;
  const auto all = run_command(run + " --deadline 60", 60);
  ASSERT_EQ(all.status, 0) << all.output;
  EXPECT_NE(all.output.find("args: --deadline 60"), std::string::npos) << all.output;
  const std::string every =
      "sdpa_cudnn@B4_T8192_H16_D128 fla_chunk_gla@B4_T8192_H16_D64 flex_swa_W512@B4_T8192_H16_D128 "
      "fla_chunk_gla@B4_T8192_H16_D128 fla_chunk_gsa_M64@B4_T8192_H16_D128 mamba2_ssd_G=H_N=D@B4_T8192_H16_D128 "
      "flex_swa_W2048@B4_T8192_H16_D128\n";
  EXPECT_NE(all.output.find("\ntasks: " + every), std::string::npos) << all.output;
  EXPECT_NE(all.output.find("worker tasks: " + every), std::string::npos) << all.output;
  // With --shapes its workers compile only what the run times.
  const auto d128 = run_command(run + " --shapes B4_T8192_H16_D128 --deadline 60", 60);
  ASSERT_EQ(d128.status, 0) << d128.output;
  EXPECT_NE(d128.output.find("args: --shapes B4_T8192_H16_D128 --deadline 60"), std::string::npos) << d128.output;
  const std::string kept =
      "sdpa_cudnn@B4_T8192_H16_D128 flex_swa_W512@B4_T8192_H16_D128 fla_chunk_gla@B4_T8192_H16_D128 "
      "fla_chunk_gsa_M64@B4_T8192_H16_D128 mamba2_ssd_G=H_N=D@B4_T8192_H16_D128 flex_swa_W2048@B4_T8192_H16_D128\n";
  EXPECT_NE(d128.output.find("\ntasks: " + kept), std::string::npos) << d128.output;
  EXPECT_NE(d128.output.find("worker tasks: " + kept), std::string::npos) << d128.output;
}

TEST(AnchorBench, WithoutTheAnchorsFolderItSaysWhichVariableToSet) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  const auto result = run_command("env -u ANCHOR_BENCH_SHAPES ANCHORS=" + tmp.str() + " python3 " + kScript, 60);
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.output.find("anchor_bench.py: ANCHORS must name the folder holding bench.py (got '" + tmp.str() +
                               "')"),
            std::string::npos)
      << result.output;
}
