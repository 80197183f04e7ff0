// What a run writes about itself, shared by the solo trainer and the
// ensemble trainer: its log (console and <run>/train.log), the records of
// metrics.jsonl and TensorBoard, and the text of metric lines.
#pragma once

#include "bla/train/metrics.h"
#include "bla/train/step_metrics.h"
#include "bla/train/tensorboard.h"

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

namespace bla::train {

// A logger writing to <run_dir>/train.log (appending, with a line marking
// where this process began when the file exists) and, unless `quiet`, to the
// console. run_dir "": warnings and errors to stderr only (ranks other than 0).
std::shared_ptr<spdlog::logger> make_run_logger(const std::string& run_dir, bool quiet, const std::string& name = "bla-train");

// " | accuracy 0.9090 | examples 500": counts print as integers.
std::string metrics_text(const std::map<std::string, double>& values);

// Bytes the caching allocator held at most on a CUDA device (0 elsewhere).
int64_t peak_memory_bytes(const torch::Device& device);

// "step 12: loss is not finite (loss nan, gradient norm 3.2)": the first bad step.
std::string nonfinite_message(const StepTotals& totals);

// metrics.jsonl and, when asked for, the TensorBoard file of one run directory.
class RunRecords {
 public:
  RunRecords(const std::string& run_dir, int64_t resume_step, bool tensorboard);
  // One record (its numbers under split/key in TensorBoard, at `step`).
  void write(const std::string& split, int64_t step, const nlohmann::json& record);

 private:
  MetricsLog metrics_;
  std::optional<TensorBoardWriter> tensorboard_;
};

}  // namespace bla::train
