#include "bla/train/feeder.h"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace bla::train {

MicroBatch scored_rows(const tasks::Batch& batch, int64_t pad_rows_to) {
  MicroBatch out;
  out.inputs = batch.inputs;
  const auto flat = batch.targets.reshape({-1});
  const auto mask = flat.ne(tasks::kIgnoreIndex);
  out.rows = mask.nonzero().reshape({-1});
  out.targets = flat.index_select(0, out.rows);
  const int64_t n = out.rows.size(0);
  if (pad_rows_to > 0) {
    if (n > pad_rows_to) {
      throw std::logic_error("a batch has " + std::to_string(n) + " scored positions, more than the task's bound of " +
                             std::to_string(pad_rows_to));
    }
    if (n < pad_rows_to) {
      out.rows = torch::cat({out.rows, torch::zeros({pad_rows_to - n}, torch::kLong)});
      out.targets = torch::cat({out.targets, torch::full({pad_rows_to - n}, tasks::kIgnoreIndex, torch::kLong)});
    }
  }
  return out;
}

MicroBatch pad_length(const MicroBatch& m, int64_t length) {
  const int64_t own = m.inputs.size(1);
  if (own > length) {
    throw std::logic_error("a batch has " + std::to_string(own) + " positions, more than the " +
                           std::to_string(length) + " it is padded to");
  }
  if (own == length) return m;
  return {at::constant_pad_nd(m.inputs, {0, length - own}, 0), m.rows.div(own, "floor") * length + m.rows.remainder(own),
          m.targets};
}

BatchFeeder::BatchFeeder(const tasks::Task& task, DataOrder order, Shard shard, FeederOptions options)
    : task_(task), order_(std::move(order)), shard_(std::move(shard)), options_(options) {
  if (options_.ahead <= 0) return;
  const int64_t threads = task_.concurrent_batches() ? std::max<int64_t>(1, options_.threads) : 1;
  for (int64_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

BatchFeeder::~BatchFeeder() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& thread : threads_) thread.join();
}

BatchFeeder::StepIndices BatchFeeder::take() {
  StepIndices step;
  for (int64_t micro = 0; micro < options_.grad_accum; ++micro)
    step.micro.push_back(shard_(order_.next(options_.micro_batch)));
  step.data_position = order_.position();
  return step;
}

StepBatch BatchFeeder::build(const StepIndices& indices) const {
  StepBatch step;
  for (const auto& micro : indices.micro) {
    auto m = scored_rows(task_.batch(tasks::Split::kTrain, micro), options_.pad_rows_to);
    if (options_.pad_length_to > 0) m = pad_length(m, options_.pad_length_to);
    if (options_.pin_memory) {
      m.inputs = m.inputs.pin_memory();
      m.rows = m.rows.pin_memory();
      m.targets = m.targets.pin_memory();
    }
    step.micro.push_back(std::move(m));
  }
  step.data_position = indices.data_position;
  return step;
}

void BatchFeeder::run() {
  for (;;) {
    StepIndices indices;
    int64_t number = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // At most `ahead` steps taken and not yet handed out.
      changed_.wait(lock, [&] { return stopping_ || taken_ - handed_ < options_.ahead; });
      if (stopping_) return;
      try {
        indices = take();
      } catch (...) {
        error_ = std::current_exception();
        stopping_ = true;
        changed_.notify_all();
        return;
      }
      number = taken_++;
    }
    try {
      auto step = build(indices);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(number, std::move(step));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      stopping_ = true;
    }
    changed_.notify_all();
  }
}

StepBatch BatchFeeder::next() {
  if (options_.ahead <= 0) return build(take());
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return ready_.count(handed_) > 0 || error_ != nullptr; });
  auto found = ready_.find(handed_);
  if (found == ready_.end()) std::rethrow_exception(error_);
  auto step = std::move(found->second);
  ready_.erase(found);
  ++handed_;
  lock.unlock();
  changed_.notify_all();
  return step;
}

}  // namespace bla::train
