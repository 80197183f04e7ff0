// Joining a group of training processes through PyTorch's c10d: the torchrun
// environment contract, a TCPStore rendezvous, and NCCL (CUDA) or Gloo (CPU)
// collectives. No c10d type appears here; see c10d_compat.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bla::dist {

// Where this process stands, from the variables torchrun (and Slurm-style
// launchers, and bla-launch) set: RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT. None set: one process.
struct DistContext {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // torchrun's agent already serves the store on MASTER_PORT
  // (TORCHELASTIC_USE_AGENT_STORE=True): every rank joins it as a client,
  // under the prefix of the restart attempt.
  bool agent_store = false;
  std::string restart_count = "0";

  // More than one process: collectives are needed.
  bool active() const { return world_size > 1; }
  // The rank that logs and writes files.
  bool is_main() const { return rank == 0; }

  // Reads the variables above; throws std::invalid_argument naming the
  // variable when one is malformed or inconsistent (RANK >= WORLD_SIZE, ...).
  static DistContext from_environment();
};

// A collective in flight; wait() blocks until its result may be used (on
// CUDA: until the current stream is ordered after it) and rethrows its error.
class PendingCollective {
 public:
  PendingCollective() = default;
  explicit PendingCollective(std::function<void()> wait) : wait_(std::move(wait)) {}
  void wait() {
    if (wait_) {
      auto w = std::move(wait_);
      wait_ = nullptr;
      w();
    }
  }
  bool pending() const { return static_cast<bool>(wait_); }

 private:
  std::function<void()> wait_;
};

// One process's membership of the group: NCCL for CUDA devices, Gloo for the
// CPU. Every collective must be called by every rank in the same order.
// Errors (a peer died, the time-out passed) surface as std::runtime_error
// naming this rank.
class ProcessGroup {
 public:
  // Rendezvous at MASTER_ADDR:MASTER_PORT (rank 0 serves the TCPStore unless
  // torchrun's agent does), then the backend for `device`. `timeout` bounds
  // the rendezvous and every collective.
  ProcessGroup(const DistContext& context, const c10::Device& device, std::chrono::milliseconds timeout);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int size() const;
  const c10::Device& device() const;
  std::string backend_name() const;

  // Sums `tensor` over all ranks in place (tensor on device()).
  void all_reduce_sum(at::Tensor& tensor);
  PendingCollective all_reduce_sum_async(at::Tensor& tensor);
  // Sums a few numbers over all ranks (one small collective).
  std::vector<double> all_reduce_sum(const std::vector<double>& values);
  // Copies rank `root`'s tensors into every rank's (in place, on device()).
  void broadcast(std::vector<at::Tensor>& tensors, int root = 0);
  // Returns rank `root`'s value on every rank.
  int64_t broadcast_value(int64_t value, int root = 0);
  // Returns when every rank has called it.
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bla::dist
