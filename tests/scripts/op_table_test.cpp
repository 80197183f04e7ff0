// scripts/op_table.py on made-up bla-bench JSON lines and an anchor
// results.json: each of our ops beside the public kernel it is set against,
// the ratio anchor / ours, and "-" where a time is missing.
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <string>

using bla::testing::have_python;
using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

const std::string kScripts = std::string(BLA_SOURCE_DIR) + "/scripts/";

// Two bla-bench runs: SWA with both passes, GLA whose forward+backward failed
// (ms null), then a line that is not JSON (bla-bench's stderr mixed in).
const char* const kOurs =
    R"({"op":"swa","batch":4,"seq":8192,"heads":16,"dim":64,"window":512,"slots":0,"results":[{"impl":"kernel","pass":"fwd","ms":0.4},{"impl":"kernel","pass":"fwd+bwd","ms":1.6}]})"
    "\n"
    R"({"op":"gla","batch":4,"seq":8192,"heads":16,"dim":64,"window":512,"slots":0,"results":[{"impl":"gla-op","pass":"fwd","ms":5.0},{"impl":"gla-op","pass":"fwd+bwd","ms":null}]})"
    "\n"
    "bla-bench: no BLA kernel for this shape\n";

const char* const kAnchors =
    R"({"results":[{"op":"flex_swa_W512","shape":"B4_T8192_H16_D64","fwd_ms":0.32,"fwdbwd_ms":2.4},)"
    R"({"op":"fla_chunk_gla","shape":"B4_T8192_H16_D64","error":"ImportError"}]})";

}  // namespace

TEST(OpTable, OursBesideTheAnchorsWithTheirRatio) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  TempDir tmp;
  util::write_file_atomically(tmp / "ours.jsonl", kOurs);
  util::write_file_atomically(tmp / "results.json", kAnchors);
  const auto result =
      run_command("python3 " + kScripts + "op_table.py " + (tmp / "ours.jsonl") + " " + (tmp / "results.json"), 60);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("| swa W512 | B4_T8192_H16_D64 | kernel | 0.400 | 1.600 | flex_swa_W512 | 0.320 | "
                               "2.400 | 0.80 | 1.50 |"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("| gla | B4_T8192_H16_D64 | gla-op | 5.000 | - | fla_chunk_gla | - | - | - | - |"),
            std::string::npos)
      << result.output;
  // Without the anchors' file every anchor column is "-".
  const auto alone = run_command("python3 " + kScripts + "op_table.py " + (tmp / "ours.jsonl"), 60);
  ASSERT_EQ(alone.status, 0) << alone.output;
  EXPECT_NE(alone.output.find("| swa W512 | B4_T8192_H16_D64 | kernel | 0.400 | 1.600 | flex_swa_W512 | - | - | - | "
                              "- |"),
            std::string::npos)
      << alone.output;
}

TEST(OpTable, WrongArgumentsAreExit2WithTheUsage) {
  if (!have_python()) GTEST_SKIP() << "python3 is not on PATH";
  const auto result = run_command("python3 " + kScripts + "op_table.py", 60);
  EXPECT_EQ(result.status, 2);
  EXPECT_NE(result.output.find("python3 scripts/op_table.py OURS.jsonl [ANCHORS/results.json]"), std::string::npos)
      << result.output;
}
