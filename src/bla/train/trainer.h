// The training loop, composed of small parts: the task (data), the model, an
// AdamW optimizer with its schedule, the data order, checkpoints and the
// metrics log. One Trainer runs one run directory.
#pragma once

#include "bla/config/config.h"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace bla::train {

struct RunOptions {
  std::string run_dir;  // empty: <run.out_dir>/<run.name>
  std::string resume;   // empty: fresh run; "auto": newest complete checkpoint; else a checkpoint path
  bool quiet = false;   // no progress lines on stdout (tests)
};

// Raised when a loss or gradient is not finite and train.on_nonfinite is "stop".
class NonFiniteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Trains as the config says and returns the run summary (also written to
// <run>/summary.json).
nlohmann::json train(config::Config config, const RunOptions& options);

// The run directory a config and options resolve to.
std::string run_directory(const config::Config& config, const RunOptions& options);

}  // namespace bla::train
