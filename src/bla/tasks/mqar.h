// Multi-query associative recall (MQAR), as Zoology defines it; see
// docs/tasks.md "MQAR". Example i of a split is a pure function of
// (seed, split, i).
#pragma once

#include "bla/tasks/task.h"

namespace bla::tasks {

struct MqarOptions {
  int64_t vocab_size = 8192;
  int64_t seq_len = 64;
  int64_t num_kv_pairs = 8;
  double power_a = 0.01;
  bool random_non_queries = true;
  int64_t train_examples = 100000;
  int64_t test_examples = 3000;
  int64_t validation_examples = 0;  // held out for model selection and early stopping
  // Throws std::invalid_argument naming the option when the combination is impossible.
  void validate() const;
};

// One example: the L input tokens and L targets (kIgnoreIndex where unsupervised).
struct MqarExample {
  std::vector<int64_t> inputs;
  std::vector<int64_t> targets;
};

class MqarGenerator {
 public:
  MqarGenerator(MqarOptions options, uint64_t seed);
  MqarExample example(Split split, int64_t index) const;
  const MqarOptions& options() const { return options_; }

 private:
  MqarOptions options_;
  uint64_t seed_;
  std::vector<double> gap_weights_;  // normalised power law over query-area slots
};

class MqarTask : public Task {
 public:
  MqarTask(MqarOptions options, uint64_t seed) : generator_(std::move(options), seed) {}
  std::string name() const override { return "mqar"; }
  int64_t vocab_size() const override { return generator_.options().vocab_size; }
  int64_t seq_len() const override { return generator_.options().seq_len; }
  int64_t num_examples(Split split) const override;
  Batch batch(Split split, const std::vector<int64_t>& indices) const override;
  int64_t max_scored_per_example() const override { return generator_.options().num_kv_pairs; }
  bool concurrent_batches() const override { return true; }  // each example is a function of its index alone
  const MqarGenerator& generator() const { return generator_; }

 private:
  MqarGenerator generator_;
};

}  // namespace bla::tasks
