// A training task: where batches come from and how a model is scored on it.
// Examples are pure functions of (seed, split, index), so a data position (the
// number of training examples consumed) is all a checkpoint needs to resume.
#pragma once

#include "bla/util/seed.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bla::config {
class Section;
class Schema;
}

namespace bla::tasks {

inline constexpr int64_t kIgnoreIndex = -100;  // targets that are not supervised

struct Batch {
  at::Tensor inputs;   // (B, L) int64 token ids
  at::Tensor targets;  // (B, L) int64, kIgnoreIndex where unsupervised
  // Task-specific extras (e.g. RegBench's allowed-next-symbol masks), keyed by name.
  std::map<std::string, at::Tensor> extras;
};

// kValidation: examples held out from training for model selection and early
// stopping (train.validation_every); a task without them reports 0 examples.
enum class Split { kTrain, kTest, kValidation };

// The seed of example `index` of `split`: examples are pure functions of it.
inline uint64_t example_seed(uint64_t seed, Split split, int64_t index) {
  const uint64_t stream = split == Split::kTrain  ? util::kTrainExamples
                          : split == Split::kTest ? util::kTestExamples
                                                  : util::kValidationExamples;
  return util::derive_seed(seed, stream, static_cast<uint64_t>(index));
}

// Scores accumulated over evaluation batches; the task turns them into metrics.
// train::evaluate adds the cross-entropy summed over supervised positions and
// the number of those positions under these keys (e.g. for perplexity).
inline constexpr const char* kLossSum = "loss_sum";
inline constexpr const char* kLossPositions = "loss_positions";
struct EvalTotals {
  std::map<std::string, double> sums;
  void add(const std::string& key, double value) { sums[key] += value; }
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t seq_len() const = 0;
  virtual int64_t num_examples(Split split) const = 0;
  // Examples [first, first + count) of `split`, in the order of `indices`
  // when given (training shuffles), else consecutive.
  virtual Batch batch(Split split, const std::vector<int64_t>& indices) const = 0;
  // Whether batch() may run on several threads at once (the data feeder then
  // builds several steps' batches side by side). False unless a task says so.
  virtual bool concurrent_batches() const { return false; }
  // At most this many positions of one example have a target (fixed-shape
  // training steps pad every batch's scored positions to it).
  virtual int64_t max_scored_per_example() const { return seq_len(); }
  // Adds this batch's contribution to the evaluation totals. `logits` has one
  // row per supervised position of `batch` (targets != kIgnoreIndex), in
  // row-major order. The default scores argmax accuracy.
  virtual void score(const Batch& batch, const at::Tensor& logits, EvalTotals& totals) const;
  // Turns totals into named metrics (e.g. {"accuracy": 0.93}).
  virtual std::map<std::string, double> metrics(const EvalTotals& totals) const;
  // The metric the run summary leads with.
  virtual std::string headline_metric() const { return "accuracy"; }
};

using TaskFactory = std::function<std::unique_ptr<Task>(config::Section& data, uint64_t seed)>;
// The declared keys of a task's data section (config/schema.h), besides `task`.
using TaskSchema = const config::Schema& (*)();

// Tasks register under the name used by data.task, with their keys.
void register_task(const std::string& name, TaskSchema schema, TaskFactory factory);
std::unique_ptr<Task> make_task(config::Section& data, uint64_t seed);
std::vector<std::string> task_names();
// The data section's own keys (`task`), then each task's schema, by name.
std::vector<const config::Schema*> data_schemas();

struct TaskRegistration {
  TaskRegistration(const std::string& name, TaskSchema schema, TaskFactory factory) {
    register_task(name, schema, std::move(factory));
  }
};

}  // namespace bla::tasks
