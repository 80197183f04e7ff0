// scripts/anchor_cache.sh: the anchors' compile caches saved to
// compile-cache.txz without Triton's intermediate forms (split into parts
// past 15 MiB, the device's per-file limit) and restored from it into a fresh
// cache folder, with the environment variables Triton and Inductor read
// pointing there.
#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <string>

using bla::testing::run_command;
using bla::testing::TempDir;
namespace util = bla::util;

namespace {

const std::string kScript = std::string(BLA_SOURCE_DIR) + "/scripts/anchor_cache.sh";

// Runs `body` in bash with the script sourced and its cache folder at `cache`.
bla::testing::CommandOutcome with_cache(const std::string& cache, const std::string& body) {
  return run_command("bash -c 'set -u; ANCHOR_CACHE_DIR=" + cache + "; source " + kScript + "; " + body + "'", 120);
}

}  // namespace

TEST(AnchorCache, SavedCacheIsRestoredIntoAFreshFolder) {
  TempDir tmp;
  const std::string first = tmp / "first", second = tmp / "second", anchors = tmp / "anchors";
  util::create_directories(anchors);
  const auto cold = with_cache(first,
                               "anchor_cache_restore " + anchors +
                                   "; echo kernel-bytes > $TRITON_CACHE_DIR/k.cubin; echo {} > $TRITON_CACHE_DIR/k.json;"
                                   " echo ir > $TRITON_CACHE_DIR/k.llir; echo ir > $TRITON_CACHE_DIR/k.ptx;"
                                   " echo graph > $TORCHINDUCTOR_CACHE_DIR/g.py; anchor_cache_save " + anchors);
  ASSERT_EQ(cold.status, 0) << cold.output;
  EXPECT_NE(cold.output.find("anchor compile cache: none in " + anchors + " (cold compile)"), std::string::npos)
      << cold.output;
  EXPECT_NE(cold.output.find("anchor compile cache: saved 0 MiB (3 files)"), std::string::npos) << cold.output;
  ASSERT_TRUE(util::path_exists(anchors + "/compile-cache.txz"));

  const auto warm = with_cache(second, "anchor_cache_restore " + anchors +
                                           "; echo triton=$TRITON_CACHE_DIR inductor=$TORCHINDUCTOR_CACHE_DIR");
  ASSERT_EQ(warm.status, 0) << warm.output;
  EXPECT_NE(warm.output.find("triton=" + second + "/triton inductor=" + second + "/inductor"), std::string::npos)
      << warm.output;
  EXPECT_EQ(util::read_file(second + "/triton/k.cubin"), "kernel-bytes\n");
  EXPECT_EQ(util::read_file(second + "/triton/k.json"), "{}\n");
  EXPECT_EQ(util::read_file(second + "/inductor/g.py"), "graph\n");
  // Triton's intermediate forms are left out.
  EXPECT_FALSE(util::path_exists(second + "/triton/k.llir"));
  EXPECT_FALSE(util::path_exists(second + "/triton/k.ptx"));
}

TEST(AnchorCache, ACacheOverFifteenMebibytesIsSplitIntoPartsThatJoinBack) {
  TempDir tmp;
  const std::string cache = tmp / "cache", out = tmp / "out";
  util::create_directories(out);
  // 16 MiB that xz cannot shrink.
  const auto saved = with_cache(cache, "anchor_cache_restore " + out +
                                           " >/dev/null; head -c 16777216 /dev/urandom > $TRITON_CACHE_DIR/big.bin;"
                                           " anchor_cache_save " + out);
  ASSERT_EQ(saved.status, 0) << saved.output;
  EXPECT_FALSE(util::path_exists(out + "/compile-cache.txz"));
  ASSERT_TRUE(util::path_exists(out + "/compile-cache.txz.part00"));
  ASSERT_TRUE(util::path_exists(out + "/compile-cache.txz.part01"));
  EXPECT_EQ(util::read_file(out + "/compile-cache.txz.part00").size(), 15u * 1024 * 1024);
  // Joined, the parts are the archive again.
  const auto joined = run_command("bash -c 'cat " + out + "/compile-cache.txz.part* > " + out +
                                      "/compile-cache.txz && tar tJf " + out + "/compile-cache.txz'",
                                  60);
  ASSERT_EQ(joined.status, 0) << joined.output;
  EXPECT_NE(joined.output.find("triton/big.bin"), std::string::npos) << joined.output;
}
