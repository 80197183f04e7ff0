// The error types of the library and the exit codes they end a program with
// (README, "Exit codes"), for the programs that link the library.
#pragma once

#include "bla/config/section.h"
#include "bla/train/checkpoint.h"
#include "bla/train/memory_estimate.h"
#include "bla/train/trainer.h"
#include "bla/util/exit_codes.h"

#include <c10/util/Exception.h>

#include <vector>

namespace bla::cli {

inline std::vector<util::ErrorKind> library_errors() {
  using util::ExitCode;
  // A subclass before its base: the first kind that matches wins.
  return {util::error_kind<train::DoesNotFitError>(ExitCode::kOutOfMemory, "does not fit: "),
          util::error_kind<c10::OutOfMemoryError>(ExitCode::kOutOfMemory, "out of memory: "),
          util::error_kind<config::ConfigError>(ExitCode::kUsage, "config error: "),
          util::error_kind<train::CheckpointError>(ExitCode::kCheckpoint),
          util::error_kind<train::NonFiniteError>(ExitCode::kNonFinite),
          util::error_kind<train::InterruptedError>(ExitCode::kInterrupted, "interrupted: "),
          util::error_kind<train::RegroupError>(ExitCode::kRegroup, "regroup: ")};
}

}  // namespace bla::cli
