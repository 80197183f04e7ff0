#include "bla/util/files.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

using bla::testing::TempDir;
namespace util = bla::util;

TEST(Paths, JoinParentAndFileName) {
  EXPECT_EQ(util::join_path("runs", "a.txt"), "runs/a.txt");
  EXPECT_EQ(util::join_path("runs/", "a.txt"), "runs/a.txt");
  EXPECT_EQ(util::join_path("", "a.txt"), "a.txt");
  EXPECT_EQ(util::join_path("runs", "/abs/a.txt"), "/abs/a.txt");
  EXPECT_EQ(util::parent_path("runs/x/step-1.ckpt"), "runs/x");
  EXPECT_EQ(util::parent_path("runs/x/"), "runs");
  EXPECT_EQ(util::parent_path("step-1.ckpt"), ".");
  EXPECT_EQ(util::parent_path("/top"), "/");
  EXPECT_EQ(util::file_name("runs/x/step-1.ckpt"), "step-1.ckpt");
  EXPECT_EQ(util::file_name("runs/x/"), "x");
}

TEST(Paths, CreateListAndRemoveFolders) {
  TempDir tmp;
  util::create_directories(tmp / "a/b/c");
  EXPECT_TRUE(util::is_directory(tmp / "a/b/c"));
  util::create_directories(tmp / "a/b/c");  // already there: fine
  util::write_file_atomically(tmp / "a/b/two.txt", "2");
  util::write_file_atomically(tmp / "a/b/one.txt", "1");
  EXPECT_EQ(util::list_directory(tmp / "a/b"), (std::vector<std::string>{"c", "one.txt", "two.txt"}));
  EXPECT_TRUE(util::list_directory(tmp / "missing").empty());
  EXPECT_TRUE(util::remove_file(tmp / "a/b/one.txt"));
  EXPECT_FALSE(util::remove_file(tmp / "a/b/one.txt"));
  EXPECT_FALSE(util::path_exists(tmp / "a/b/one.txt"));
  util::remove_tree(tmp / "a");
  EXPECT_FALSE(util::path_exists(tmp / "a"));
  // A file where a folder should go is named in the error.
  util::write_file_atomically(tmp / "file", "x");
  try {
    util::create_directories(tmp / "file/sub");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot create folder " + (tmp / "file/sub") + ": " + (tmp / "file") + " exists and is not a folder");
  }
}

// PyTorch's wheels export a static libstdc++'s std::filesystem from
// libtorch_cpu.so; calling it crashes (see bla/util/files.h). CI builds against
// Debian's LibTorch, which does not, so only this check catches a new use.
TEST(StdFilesystem, IsNotUsed) {
  const std::string needles[] = {std::string("std::") + "filesystem::", std::string("<") + "filesystem>"};
  std::vector<std::string> offenders;
  std::function<void(const std::string&)> scan = [&](const std::string& dir) {
    for (const auto& name : bla::util::list_directory(dir)) {
      const std::string path = bla::util::join_path(dir, name);
      if (bla::util::is_directory(path)) {
        scan(path);
        continue;
      }
      const auto dot = name.rfind('.');
      const std::string ext = dot == std::string::npos ? "" : name.substr(dot);
      if (ext != ".h" && ext != ".cpp" && ext != ".cu" && ext != ".cuh") continue;
      const std::string text = bla::util::read_file(path);
      for (const auto& needle : needles)
        if (text.find(needle) != std::string::npos) offenders.push_back(path + " (" + needle + ")");
    }
  };
  for (const char* top : {"src", "tests", "benchmarks", "kernels"}) scan(bla::util::join_path(BLA_SOURCE_DIR, top));
  EXPECT_TRUE(offenders.empty()) << "use bla/util/files.h instead of std::filesystem in:\n"
                                 << [&] {
                                      std::string all;
                                      for (const auto& o : offenders) all += "  " + o + "\n";
                                      return all;
                                    }();
}
