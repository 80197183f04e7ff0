// Gradient averaging across ranks with bucketed all-reduce that overlaps the
// backward pass.
//
// Parameters are grouped, in reverse registration order (roughly the order
// in which backward produces their gradients), into flat buckets of about
// `bucket_mb` MB. A hook on each parameter copies its gradient into its
// bucket as soon as backward computes it; when a bucket is full it is
// all-reduced asynchronously while backward goes on. Buckets are launched in
// index order only, so that every rank issues the same collectives in the
// same order whatever order its hooks fire in. finish() launches what is
// left (parameters that got no gradient contribute their current .grad or
// zeros), waits, and writes the averages into .grad.
//
// With gradient accumulation only the last micro-step's backward
// communicates: begin_micro_step(false) turns the hooks off, and on the last
// one the hook adds the gradient accumulated so far (.grad) to the one it
// receives, so the bucket holds the step's whole local gradient.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "bla/dist/process_group.h"

namespace bla::dist {

class GradSync {
 public:
  // `group` must outlive this object. Hooks are removed on destruction.
  GradSync(std::vector<at::Tensor> parameters, ProcessGroup& group, double bucket_mb);
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Before each backward of a step: whether it is the last micro-step (the
  // one that communicates).
  void begin_micro_step(bool last);
  // After the last backward: every .grad holds the average over ranks.
  void finish();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Parameter indices (into the constructor's list) of each bucket, in
  // launch order; parameters that need no gradient are in none.
  std::vector<std::vector<int64_t>> bucket_layout() const;
  // Seconds finish() spent waiting for collectives, summed over steps (the
  // communication backward did not hide). On CUDA this is host time unless
  // `synchronize_for_timing` is set, which synchronizes the compute stream
  // around the wait to measure the device-side wait (slower; for measurement).
  double wait_seconds() const { return wait_seconds_; }
  void set_synchronize_for_timing(bool on) { synchronize_for_timing_ = on; }

 private:
  struct Slot {
    at::Tensor parameter;
    int64_t index = 0;  // in the constructor's list
    int64_t bucket = 0;
    int64_t offset = 0;  // into the bucket's flat buffer
    bool ready = false;
    unsigned hook = 0;
  };
  struct Bucket {
    at::Tensor flat;
    std::vector<int64_t> slots;
    int64_t waiting = 0;  // slots not ready yet
    bool launched = false;
    PendingCollective work;
  };

  void on_gradient(int64_t slot, const at::Tensor& grad);
  void launch_ready_buckets();  // in index order; caller holds mutex_
  void launch(Bucket& bucket);
  at::Tensor slot_view(const Slot& slot) const;

  ProcessGroup& group_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  int64_t next_launch_ = 0;
  bool communicate_ = false;
  bool synchronize_for_timing_ = false;
  double wait_seconds_ = 0;
  std::mutex mutex_;  // hooks run on the autograd engine's thread on CUDA
};

}  // namespace bla::dist
