// The run's checkpoints as the trainer uses them: which file --resume names,
// loading model, optimizer, step, data position and log window from it, and
// saving the same (rank 0 alone, never with non-finite parameters).
#pragma once

#include "bla/config/config.h"
#include "bla/train/checkpoint.h"
#include "bla/train/optimizer.h"

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>
#include <torch/nn/module.h>

#include <limits>
#include <string>
#include <vector>

namespace bla::tasks {
class Task;
}

namespace bla::train {

// Where a run is: what a checkpoint records besides the tensors.
struct Progress {
  int64_t step = 0;
  int64_t data_position = 0;
  int64_t total_steps = 0;
  double window_loss = 0, window_correct = 0, window_count = 0;  // the log window in progress
  int64_t window_steps = 0;
  std::string run_id;  // made when the run starts afresh, carried by every checkpoint of it
};

// A run's identity: its id and a hash of its resolved model and data
// sections, written to <run>/run.json and into every checkpoint.
nlohmann::json run_identity(const config::Config& config, const std::string& run_id);
// A fresh random run id (16 hex digits).
std::string new_run_id();

class NonFiniteError;

class Checkpointer {
 public:
  // Every checkpoint also records the task's sequence length and, for text,
  // its tokenizer (data/tokenizer_record.h), so the model can be used without
  // the data it was trained on.
  Checkpointer(const std::string& run_dir, const config::Config& config, const tasks::Task& task, int64_t vocab,
               spdlog::logger& log);

  // The rule that a run directory belongs to one run: starting afresh (no
  // --resume) where checkpoints exist is a config error naming the way out,
  // unless `overwrite`: then the earlier run's files move into
  // <run>/previous-<time>/ (nothing is deleted); returns that folder or "".
  static std::string claim_for_fresh_start(const std::string& run_dir, bool overwrite);
  // After resuming from `step`: checkpoints of later steps belong to an
  // abandoned line; they move into checkpoints/abandoned-after-<step>-<time>/
  // so rotation and --resume auto see only the current line. Returns that folder or "".
  std::string set_aside_later_than(int64_t step) const;
  // Removes the temporary files of saves that a killed process left behind
  // (step-N.ckpt.tmp.PID whose process is gone); returns their names.
  std::vector<std::string> remove_stale_temporaries() const;
  // The checkpoint `--resume` names: "" (none: start fresh), "auto" (the
  // newest whose seal is intact; damaged ones are skipped with a warning) or
  // a path. Returns "" when there is nothing to resume. With `at_most_step`,
  // "auto" takes the newest intact checkpoint of that step or an earlier one.
  std::string to_resume(const std::string& resume,
                        int64_t at_most_step = std::numeric_limits<int64_t>::max()) const;
  // The step of a checkpoint file, read from its name (step-XXXXXXXX.ckpt); -1 if the name has none.
  static int64_t step_of(const std::string& path);
  // Loads `path` into the model and optimizer; returns where the run was.
  Progress load(const std::string& path, torch::nn::Module& model, Optimizer& optimizer) const;
  // Throws NonFiniteError naming `step` if a parameter is not finite (every
  // rank calls it before the barrier that precedes a save).
  static void check_finite(int64_t step, const torch::nn::Module& model);
  // Saves a checkpoint of `progress` and rotates old ones.
  std::string save(const Progress& progress, const torch::nn::Module& model, Optimizer& optimizer) const;

 private:
  CheckpointDirectory directory_;
  const config::Config& config_;
  int64_t vocab_;
  int64_t seq_len_;
  nlohmann::json tokenizer_;  // null for tasks without one
  spdlog::logger& log_;
};

}  // namespace bla::train
