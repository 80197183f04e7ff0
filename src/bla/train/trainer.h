// The training loop, composed of small parts: the task and the model, the
// optimizer with its schedule (optimizer.h), the data feeder (feeder.h), the
// step runner with its non-finite policy and CUDA graph (step_runner.h), the
// device-side step metrics (step_metrics.h), checkpoints (checkpointer.h) and
// the metrics log and TensorBoard file (metrics.h, tensorboard.h). One call
// of train() runs one run directory.
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
  // A fresh run (no resume) into a directory that holds checkpoints moves the
  // earlier run's files into <run>/previous-<time>/ instead of refusing.
  bool overwrite = false;
  // SIGTERM/SIGINT/SIGHUP end the run after the current step with a
  // checkpoint (util/interrupt.h); bla-train sets it, tests may not.
  bool handle_signals = false;
};

// Raised when a run stopped on SIGTERM, SIGINT or SIGHUP after saving a
// checkpoint (bla-train exits 5: resume with --resume auto).
class InterruptedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Raised by an ensemble run with EnsembleOptions::regroup once at least half
// its members have finished early and the others' checkpoints are saved
// (bla-train exits 7: continue those as a smaller ensemble, --resume auto).
class RegroupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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
