#include "bla/train/feeder.h"

#include <torch/torch.h>

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

BatchFeeder::BatchFeeder(const tasks::Task& task, DataOrder order, Shard shard, FeederOptions options)
    : task_(task), order_(std::move(order)), shard_(std::move(shard)), options_(options) {
  if (options_.ahead > 0) thread_ = std::thread([this] { run(); });
}

BatchFeeder::~BatchFeeder() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

StepBatch BatchFeeder::build() {
  StepBatch step;
  for (int64_t micro = 0; micro < options_.grad_accum; ++micro) {
    auto batch = task_.batch(tasks::Split::kTrain, shard_(order_.next(options_.micro_batch)));
    auto m = scored_rows(batch, options_.pad_rows_to);
    if (options_.pin_memory) {
      m.inputs = m.inputs.pin_memory();
      m.rows = m.rows.pin_memory();
      m.targets = m.targets.pin_memory();
    }
    step.micro.push_back(std::move(m));
  }
  step.data_position = order_.position();
  return step;
}

void BatchFeeder::run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || static_cast<int64_t>(ready_.size()) < options_.ahead; });
      if (stopping_) return;
    }
    try {
      auto step = build();
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.push_back(std::move(step));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      stopping_ = true;
    }
    changed_.notify_all();
  }
}

StepBatch BatchFeeder::next() {
  if (options_.ahead == 0) return build();
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || error_ != nullptr; });
  if (ready_.empty()) std::rethrow_exception(error_);
  auto step = std::move(ready_.front());
  ready_.pop_front();
  lock.unlock();
  changed_.notify_all();
  return step;
}

}  // namespace bla::train
