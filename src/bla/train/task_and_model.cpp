#include "bla/train/task_and_model.h"

#include <string>

namespace bla::train {

int64_t model_vocabulary(const config::Config& config, const tasks::Task& task) {
  const int64_t vocab = config.model.vocab_size > 0 ? config.model.vocab_size : task.vocab_size();
  if (vocab < task.vocab_size()) {
    throw config::ConfigError("model.vocab_size (" + std::to_string(vocab) + ") is smaller than the task's vocabulary (" +
                              std::to_string(task.vocab_size()) + "); remove it or raise it");
  }
  return vocab;
}

model::LanguageModel build_model(const config::Config& config, int64_t vocab, int64_t seq_len, bool data_read) {
  model::LanguageModel model(config.model, vocab, seq_len);
  if (data_read) {
    config.finish_deferred_sections();
  } else {
    for (const auto& spec : config.model.mixers) spec.params->finish();
  }
  return model;
}

}  // namespace bla::train
