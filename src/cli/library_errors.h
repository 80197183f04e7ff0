// The error types of the library and the exit codes they end a program with
// (README, "Exit codes"), for the programs that link the library.
#pragma once

#include "bla/config/section.h"
#include "bla/train/checkpoint.h"
#include "bla/train/trainer.h"
#include "bla/util/exit_codes.h"

#include <vector>

namespace bla::cli {

inline std::vector<util::ErrorKind> library_errors() {
  using util::ExitCode;
  return {util::error_kind<config::ConfigError>(ExitCode::kUsage, "config error: "),
          util::error_kind<train::CheckpointError>(ExitCode::kCheckpoint),
          util::error_kind<train::NonFiniteError>(ExitCode::kNonFinite),
          util::error_kind<train::InterruptedError>(ExitCode::kInterrupted, "interrupted: ")};
}

}  // namespace bla::cli
