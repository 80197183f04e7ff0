// The data feeder: builds the batches of the steps to come on a thread of its
// own while the device trains, in the data order, so batch generation is off
// the step's critical path. Each micro-batch comes with the flat indices of
// its scored positions and their targets (computed here, on the host), so the
// step gathers hidden states with a fixed-size index instead of a boolean
// mask (which would make the host wait for the device). On CUDA the tensors
// are in pinned memory and reach the device with non-blocking copies.
#pragma once

#include "bla/tasks/task.h"
#include "bla/train/data_order.h"

#include <torch/types.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace bla::train {

struct MicroBatch {
  torch::Tensor inputs;   // (B, T) int64 token ids
  torch::Tensor rows;     // (R) int64: flat indices (b * T + t) of the scored positions
  torch::Tensor targets;  // (R) int64: their targets (kIgnoreIndex on padding rows)
};

struct StepBatch {
  std::vector<MicroBatch> micro;  // train.grad_accum micro-batches
  int64_t data_position = 0;      // the data order's position once this step's examples are consumed
};

struct FeederOptions {
  int64_t micro_batch = 1;  // examples per micro-batch (this rank's share is taken by `shard`)
  int64_t grad_accum = 1;
  // > 0: every micro-batch's scored rows are padded to this many (index 0,
  // target kIgnoreIndex), giving the fixed shapes a captured CUDA graph
  // needs; 0: exactly the scored rows.
  int64_t pad_rows_to = 0;
  // > 0: every micro-batch's inputs padded at their end to this many
  // positions (pad_length), so that a task whose batches are as long as
  // their longest row (RegBench) gives the fixed (B, T) a captured CUDA
  // graph needs; 0: as the task built them.
  int64_t pad_length_to = 0;
  bool pin_memory = false;  // CUDA training: page-locked host tensors
  int64_t ahead = 2;        // steps built ahead on the feeder's threads; 0: built in next()
  // Threads building steps side by side (each takes the next step's example
  // indices in the data order, builds its batches, and the steps come out in
  // order), where the task allows it (Task::concurrent_batches), else 1. At
  // most `ahead` steps are in the making at once.
  int64_t threads = 1;
};

// Builds the scored-row index of one batch (exposed for tests).
MicroBatch scored_rows(const tasks::Batch& batch, int64_t pad_rows_to);

// `m` with its inputs padded at their end to `length` positions (token 0)
// and its row indices b * T + t moved to the new length. No scored position
// sees the padding: every mixer is causal. Throws std::logic_error where the
// inputs are already longer.
MicroBatch pad_length(const MicroBatch& m, int64_t length);

class BatchFeeder {
 public:
  // `shard` maps a global micro-batch of example indices to this rank's share.
  using Shard = std::function<std::vector<int64_t>(const std::vector<int64_t>&)>;
  BatchFeeder(const tasks::Task& task, DataOrder order, Shard shard, FeederOptions options);
  ~BatchFeeder();
  BatchFeeder(const BatchFeeder&) = delete;
  BatchFeeder& operator=(const BatchFeeder&) = delete;

  // The next step's micro-batches; rethrows what building them threw.
  StepBatch next();

 private:
  // One step's example indices, taken from the data order.
  struct StepIndices {
    std::vector<std::vector<int64_t>> micro;
    int64_t data_position = 0;
  };
  StepIndices take();
  StepBatch build(const StepIndices& indices) const;
  void run();

  const tasks::Task& task_;
  DataOrder order_;
  Shard shard_;
  FeederOptions options_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int64_t, StepBatch> ready_;  // built steps by number, handed out in order
  int64_t taken_ = 0;                   // steps whose indices a thread has taken
  int64_t handed_ = 0;                  // steps next() has returned
  std::exception_ptr error_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace bla::train
