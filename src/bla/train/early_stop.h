// Evaluation on the validation split and early stopping: every
// train.validation_every steps the model is scored on the task's validation
// examples (held out from training; the test split is never used to decide
// anything), and with train.early_stop_metric the run ends once that metric
// reaches train.early_stop_at: at least it, or at most it for loss, tvd and
// perplexity. The run then ends as at the end of its budget: a checkpoint,
// the test evaluation, summary.json (with "early_stop").
#pragma once

#include "bla/config/config.h"
#include "bla/tasks/task.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace bla::train {

// Throws config::ConfigError when train.validation_every is set but the task
// has no validation examples (naming the key that gives them).
void check_validation_settings(const config::TrainConfig& train, const tasks::Task& task);

class EarlyStop {
 public:
  explicit EarlyStop(const config::TrainConfig& train);
  bool enabled() const { return !metric_.empty(); }
  // Whether a validation evaluation's metrics reach the target. Throws
  // config::ConfigError naming the metrics there are when the metric is not one of them.
  bool reached(const std::map<std::string, double>& validation) const;
  // "validation accuracy 0.9912 >= 0.99 at step 400".
  std::string describe(int64_t step, const std::map<std::string, double>& validation) const;
  // {"step", "metric", "value", "target"} for summary.json.
  nlohmann::json record(int64_t step, const std::map<std::string, double>& validation) const;

 private:
  std::string metric_;
  double target_ = 0;
  bool lower_is_better_ = false;
};

}  // namespace bla::train
