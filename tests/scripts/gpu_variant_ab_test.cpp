// scripts/gpu_variant_ab.sh on the CPU (SKIP_BUILD=1, two build folders whose
// bla-bench and bla_cuda_tests are stand-ins): the variant build's tests run
// with the filter, bla-bench runs every argument set in both builds each
// round, and bench.md gives each set's medians per build and their ratio.
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

const std::string kScript = std::string(BLA_SOURCE_DIR) + "/scripts/gpu_variant_ab.sh";

void write_executable(const std::string& path, const std::string& text) {
  util::write_file_atomically(path, text);
  ::chmod(path.c_str(), 0755);
}

// A build folder whose bla-bench prints bla-bench's table with these times
// (and appends its arguments to calls.txt beside it) and whose bla_cuda_tests
// prints its arguments after gtest's last line.
std::string fake_build(const TempDir& tmp, const std::string& name, const std::string& fwd, const std::string& fwdbwd) {
  const std::string dir = tmp / name;
  util::create_directories(dir + "/src");
  util::create_directories(dir + "/tests");
  write_executable(dir + "/src/bla-bench",
                   "#!/bin/sh\necho \"$*\" >> " + dir + "/calls.txt\n"
                   "echo 'impl          pass            ms   TFLOP/s     GB/s   %copy     %mm  ref/this'\n"
                   "echo 'bla-kernel    fwd          " + fwd + "      34.0      213    nan%    nan%       nan'\n"
                   "echo 'bla-kernel    fwd+bwd      " + fwdbwd + "      46.5      249    nan%    nan%       nan'\n");
  write_executable(dir + "/tests/bla_cuda_tests", "#!/bin/sh\necho \"[  PASSED  ] 3 tests. ($*)\"\n");
  return dir;
}

}  // namespace

TEST(GpuVariantAb, BothBuildsRunEveryArgumentSetEachRoundAndTheTableGivesTheRatio) {
  TempDir tmp;
  const std::string def = fake_build(tmp, "default", "1.000", "2.000");
  const std::string var = fake_build(tmp, "variant", "0.900", "2.200");
  const std::string out = tmp / "out";
  const auto run = run_command("env SKIP_BUILD=1 BUILD_DIR=" + def + " VAR_DIR=" + var + " OUT=" + out +
                                   " VARIANT=-DMY_VARIANT ROUNDS=2 LIMIT=120 BENCH='--op bla --slots 64;--op gla' " +
                                   kScript,
                               180);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("builds: default rc=0, variant (-DMY_VARIANT) rc=0"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("[  PASSED  ] 3 tests. (--gtest_filter=*BlaKernel*)"), std::string::npos) << run.output;
  const std::string once = "--warmup 5 --reps 20 --sets 3 --no-ceilings --no-reference\n";
  const std::string calls = "--op bla --slots 64 " + once + "--op gla " + once;
  EXPECT_EQ(util::read_file(def + "/calls.txt"), calls + calls);
  EXPECT_EQ(util::read_file(var + "/calls.txt"), calls + calls);
  const std::string table = util::read_file(out + "/bench.md");
  EXPECT_EQ(table,
            "| bla-bench arguments | kernel, pass | default ms | variant ms | variant / default |\n"
            "| --- | --- | --- | --- | --- |\n"
            "| --op bla --slots 64 | bla-kernel fwd | 1.000, 1.000 | 0.900, 0.900 | 0.900 |\n"
            "| --op bla --slots 64 | bla-kernel fwd+bwd | 2.000, 2.000 | 2.200, 2.200 | 1.100 |\n"
            "| --op gla | bla-kernel fwd | 1.000, 1.000 | 0.900, 0.900 | 0.900 |\n"
            "| --op gla | bla-kernel fwd+bwd | 2.000, 2.000 | 2.200, 2.200 | 1.100 |\n");
}

TEST(GpuVariantAb, WithoutAVariantItSaysWhatToSet) {
  const auto run = run_command("env -u VARIANT bash " + kScript, 30);
  EXPECT_EQ(run.status, 2) << run.output;
  EXPECT_NE(run.output.find("gpu_variant_ab.sh: set VARIANT to the variant's macros, e.g. "
                            "VARIANT=-DMY_VARIANT"),
            std::string::npos)
      << run.output;
}
