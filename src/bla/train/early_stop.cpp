#include "bla/train/early_stop.h"

#include <cstdio>

namespace bla::train {

void check_validation_settings(const config::TrainConfig& train, const tasks::Task& task) {
  if (train.validation_every > 0 && task.num_examples(tasks::Split::kValidation) == 0) {
    throw config::ConfigError("train.validation_every is " + std::to_string(train.validation_every) + " but task " +
                              task.name() + " has no validation examples" +
                              (task.name() == "mqar"       ? "; set data.validation_examples (e.g. 1000)"
                               : task.name() == "regbench" ? "; set data.validation_automata (e.g. 250)"
                                                           : " (it has no validation split); set validation_every: 0"));
  }
}

EarlyStop::EarlyStop(const config::TrainConfig& train)
    : metric_(train.early_stop_metric),
      target_(train.early_stop_at),
      lower_is_better_(metric_ == "loss" || metric_ == "tvd" || metric_ == "tvd_seq_icl" || metric_ == "perplexity") {}

bool EarlyStop::reached(const std::map<std::string, double>& validation) const {
  auto it = validation.find(metric_);
  if (it == validation.end()) {
    std::string known;
    for (const auto& [key, value] : validation) known += (known.empty() ? "" : ", ") + key;
    throw config::ConfigError("train.early_stop_metric: the validation results have no '" + metric_ + "'; they have " +
                              known);
  }
  return lower_is_better_ ? it->second <= target_ : it->second >= target_;
}

std::string EarlyStop::describe(int64_t step, const std::map<std::string, double>& validation) const {
  char text[160];
  std::snprintf(text, sizeof(text), "validation %s %.4f %s %g at step %lld", metric_.c_str(), validation.at(metric_),
                lower_is_better_ ? "<=" : ">=", target_, static_cast<long long>(step));
  return text;
}

nlohmann::json EarlyStop::record(int64_t step, const std::map<std::string, double>& validation) const {
  return {{"step", step}, {"metric", metric_}, {"value", validation.at(metric_)}, {"target", target_}};
}

}  // namespace bla::train
