// Data-parallel training as the trainer sees it: one object that reads the
// torchrun environment, picks this rank's device, joins the process group,
// shards every batch, averages gradients and sums metrics across ranks. With
// one process (no RANK/WORLD_SIZE in the environment) every call is a no-op
// or the identity, so the trainer has a single code path.
//
// What is synchronised (docs/distributed.md): parameters are broadcast from
// rank 0 once; gradients are averaged every optimizer step (GradSync); the
// logged loss/accuracy sums are all-reduced; checkpoints are written by rank
// 0 after a barrier. Everything else (optimizer, schedule, data order, RNG)
// is identical on every rank because it is a pure function of the config,
// the step, and the averaged gradients.
#pragma once

#include "bla/config/config.h"
#include "bla/dist/process_group.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bla::dist {

class GradSync;

class DataParallel {
 public:
  // `requested`: the device the config asks for (cpu, cuda, cuda:N). With
  // several ranks on CUDA each rank takes cuda:LOCAL_RANK. Throws
  // config::ConfigError when train.batch_size is not divisible by
  // WORLD_SIZE x train.grad_accum, std::invalid_argument for a malformed
  // environment, std::runtime_error when the rendezvous fails.
  DataParallel(const config::Config& config, const c10::Device& requested);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  const DistContext& context() const { return context_; }
  bool active() const { return context_.active(); }
  bool is_main() const { return context_.is_main(); }
  int rank() const { return context_.rank; }
  int world_size() const { return context_.world_size; }
  const c10::Device& device() const { return device_; }
  // One line for the run log ("" with one process).
  std::string describe() const;

  // This rank's contiguous share of a global (micro-)batch: rank r of W takes
  // indices [r*n/W, (r+1)*n/W). The batch, not its shards, is what the data
  // order produces, so the examples seen do not depend on W.
  std::vector<int64_t> shard(const std::vector<int64_t>& global) const;

  // Rank 0's values into every rank's tensors (start, and after a resume).
  void broadcast(std::vector<at::Tensor> parameters);
  // Installs gradient averaging on `parameters` (call once, after the
  // optimizer is built and the parameters are on their device).
  void attach(std::vector<at::Tensor> parameters);
  // Before each micro-step's backward; `last`: the one that communicates.
  void begin_micro_step(bool last);
  // After the last backward of a step: .grad holds the average over ranks.
  void finish_gradients();

  // Sums of a few numbers over ranks (the identity with one process).
  std::vector<double> sum(const std::vector<double>& values);
  // Sums a tensor on this rank's device over ranks, in place, without a host
  // sync on NCCL (nothing with one process).
  void sum_(at::Tensor& tensor);
  void barrier();
  // Throws std::runtime_error naming `what` unless rank 0 holds the same value.
  void check_same(int64_t value, const std::string& what);

  // {"world_size", "backend", "buckets", "bucket_mb", "allreduce_wait_s"}.
  nlohmann::json summary() const;

 private:
  DistContext context_;
  c10::Device device_;
  double bucket_mb_;
  std::unique_ptr<ProcessGroup> group_;
  std::unique_ptr<GradSync> grad_sync_;
  // Test hook (docs/distributed.md): BLA_TEST_DIE_AT_STEP=RANK:STEP makes that
  // rank SIGKILL itself in its STEP-th optimizer step (counted from 1 in this
  // process), to test that a dead rank stops the run.
  int die_rank_ = -1;
  int64_t die_step_ = 0;
  int64_t steps_ = 0;
};

}  // namespace bla::dist
