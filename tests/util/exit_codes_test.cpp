#include "bla/util/exit_codes.h"
#include "bla/util/input_file.h"

#include "bla/config/section.h"
#include "bla/train/checkpoint.h"
#include "cli/library_errors.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

namespace {

using bla::util::ExitCode;

// The exit status and what went to stderr when `body` runs under the shared handler.
std::pair<int, std::string> guarded(const std::function<int()>& body) {
  testing::internal::CaptureStderr();
  const int status = bla::util::run_guarded("prog", bla::cli::library_errors(), body);
  return {status, testing::internal::GetCapturedStderr()};
}

TEST(ExitCodes, EachErrorTypeHasItsDocumentedCode) {
  EXPECT_EQ(guarded([] { return 0; }), std::make_pair(0, std::string()));
  EXPECT_EQ(guarded([]() -> int { throw bla::config::ConfigError("cfg.yaml, line 3: bad"); }),
            std::make_pair(2, std::string("prog: config error: cfg.yaml, line 3: bad\n")));
  EXPECT_EQ(guarded([]() -> int { throw bla::util::ArgumentError("--x: bad"); }),
            std::make_pair(2, std::string("prog: --x: bad\n")));
  EXPECT_EQ(guarded([]() -> int { throw bla::train::CheckpointError("checkpoint c: torn"); }),
            std::make_pair(3, std::string("prog: checkpoint c: torn\n")));
  EXPECT_EQ(guarded([]() -> int { throw std::runtime_error("disk full"); }),
            std::make_pair(1, std::string("prog: error: disk full\n")));
  EXPECT_EQ(guarded([]() -> int { throw std::bad_alloc(); }).first, 6);
  EXPECT_EQ(guarded([]() -> int { throw 7; }), std::make_pair(1, std::string("prog: error: an unknown exception\n")));
}

TEST(ExitCodes, LibTorchErrorsLoseTheirBacktrace) {
  const auto [status, output] = guarded([]() -> int {
    torch::zeros({2}).index_select(0, torch::tensor({5}));  // index out of range: a c10::Error with a backtrace
    return 0;
  });
  EXPECT_EQ(status, 1);
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  EXPECT_EQ(output.rfind("prog: error: ", 0), 0u) << output;
}

TEST(InputFile, CheckpointReadersRefuseWhatIsNotAFile) {
  bla::testing::TempDir tmp;
  std::ofstream(tmp / "config.yaml") << "run: {name: x}\n";
  std::ofstream(tmp / "notes.txt") << "hello\n";
  const auto message = [](const std::string& path) {
    try {
      bla::train::read_checkpoint_meta(path);
    } catch (const bla::train::CheckpointError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(message(tmp / "config.yaml"), "checkpoint " + (tmp / "config.yaml") + ": is a YAML file, not a checkpoint");
  EXPECT_EQ(message(tmp / "notes.txt"), "checkpoint " + (tmp / "notes.txt") + ": is a text file, not a checkpoint");
  EXPECT_EQ(message("/dev/zero"),
            "checkpoint /dev/zero: is not a regular file (a device, pipe or socket), not a checkpoint");
  EXPECT_EQ(message(tmp.str()), "checkpoint " + tmp.str() + ": is a folder, not a checkpoint");
  EXPECT_NE(message(tmp / "missing.ckpt").find("cannot be opened: No such file"), std::string::npos);
  EXPECT_THROW(bla::util::check_binary_input(tmp / "config.yaml", 4, "a checkpoint"), std::runtime_error);  // too big
  try {
    bla::util::check_binary_input(tmp / "notes.txt", 2, "a checkpoint");
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "is 6 bytes, more than a checkpoint can be (2 bytes at most)");
  }
}

}  // namespace
