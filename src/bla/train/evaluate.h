// Scoring a model on a task's split: the loss over supervised positions and
// the task's own metrics (accuracy for MQAR).
#pragma once

#include "bla/model/lm.h"
#include "bla/tasks/task.h"

#include <map>
#include <string>

namespace bla::train {

struct LossAndLogits {
  torch::Tensor loss;    // mean cross-entropy over supervised positions (scalar, float32)
  torch::Tensor logits;  // (supervised positions, vocab)
  int64_t count = 0;     // supervised positions
};

// Runs the model on a batch; the LM head is applied to supervised positions only.
LossAndLogits supervised_loss(model::LanguageModelImpl& model, const tasks::Batch& batch, const torch::Device& device);

struct EvalOptions {
  int64_t max_examples = 0;  // 0: the whole split
  int64_t batch_size = 64;
  bool bf16 = false;         // CUDA autocast
};

// {"loss": ..., "examples": ...} and the task's metrics (accuracy for MQAR, perplexity for text)
std::map<std::string, double> evaluate(model::LanguageModelImpl& model, const tasks::Task& task, tasks::Split split,
                                       const torch::Device& device, const EvalOptions& options);

}  // namespace bla::train
