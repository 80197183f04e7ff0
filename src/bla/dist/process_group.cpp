#include "bla/dist/process_group.h"

#include "bla/dist/c10d_compat.h"

#include <torch/torch.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <stdexcept>

namespace bla::dist {

namespace {

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return (value != nullptr && value[0] != '\0') ? value : nullptr;
}

int env_int(const char* name, int fallback, int min, int max) {
  const char* text = env(name);
  if (text == nullptr) return fallback;
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
    throw std::invalid_argument(std::string("distributed: environment variable ") + name + "='" + text +
                                "' is not an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                                "]; fix or unset it");
  }
  return static_cast<int>(value);
}

// c10::Error's what() carries a C++ backtrace; the first line is the message.
std::string message_of(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return c10_error->what_without_backtrace();
  return e.what();
}

}  // namespace

DistContext DistContext::from_environment() {
  DistContext c;
  const bool has_rank = env("RANK") != nullptr, has_world = env("WORLD_SIZE") != nullptr;
  if (!has_rank && !has_world) return c;  // one process, no group
  if (has_rank != has_world) {
    throw std::invalid_argument(std::string("distributed: ") + (has_rank ? "RANK" : "WORLD_SIZE") + " is set but " +
                                (has_rank ? "WORLD_SIZE" : "RANK") +
                                " is not; set both (torchrun and bla-launch do) or neither for one process");
  }
  c.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  c.rank = env_int("RANK", 0, 0, c.world_size - 1);
  // Slurm-style launches may give only SLURM_LOCALID for the local rank.
  c.local_rank = env_int("LOCAL_RANK", env_int("SLURM_LOCALID", 0, 0, 1 << 20), 0, 1 << 20);
  c.local_world_size = env_int("LOCAL_WORLD_SIZE", std::max(1, c.local_rank + 1), 1, 1 << 20);
  if (c.local_rank >= c.local_world_size) {
    throw std::invalid_argument("distributed: LOCAL_RANK (" + std::to_string(c.local_rank) +
                                ") must be < LOCAL_WORLD_SIZE (" + std::to_string(c.local_world_size) + ")");
  }
  if (c.world_size > 1) {
    const char* addr = env("MASTER_ADDR");
    if (addr == nullptr || env("MASTER_PORT") == nullptr) {
      throw std::invalid_argument("distributed: WORLD_SIZE is " + std::to_string(c.world_size) +
                                  " but MASTER_ADDR or MASTER_PORT is not set; set both to rank 0's host and a free "
                                  "port (torchrun and bla-launch do)");
    }
    c.master_addr = addr;
    c.master_port = env_int("MASTER_PORT", 0, 1, 65535);
  }
  const char* agent = env("TORCHELASTIC_USE_AGENT_STORE");
  c.agent_store = agent != nullptr && std::string(agent) == "True";
  if (const char* restarts = env("TORCHELASTIC_RESTART_COUNT")) c.restart_count = restarts;
  return c;
}

struct ProcessGroup::Impl {
  DistContext context;
  c10::Device device;
  std::chrono::milliseconds timeout;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d_compat::BackendBase> backend;
  std::string backend_name;
  bool healthy = true;

  Impl(const DistContext& c, const c10::Device& d, std::chrono::milliseconds t) : context(c), device(d), timeout(t) {}

  std::string who() const { return "rank " + std::to_string(context.rank); }

  [[noreturn]] void fail(const std::string& what, const std::exception& e) {
    healthy = false;
    throw std::runtime_error(who() + ": " + what + " failed (" + backend_name + "): " + message_of(e) +
                             ". Another rank probably died or stalled longer than run.dist_timeout_s (" +
                             std::to_string(timeout.count() / 1000) + " s)");
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      work->wait();
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }
};

ProcessGroup::ProcessGroup(const DistContext& context, const c10::Device& device, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(context, device, timeout)) {
  auto& s = *impl_;
  const bool serve = !context.agent_store && context.rank == 0;
  try {
    s.store = c10d_compat::make_tcp_store(context.master_addr, static_cast<uint16_t>(context.master_port), serve,
                                          context.world_size, timeout);
  } catch (const std::exception& e) {
    throw std::runtime_error(s.who() + ": rendezvous at " + context.master_addr + ":" +
                             std::to_string(context.master_port) + " (" + std::to_string(context.world_size) +
                             " processes, " + (serve ? "serving the store" : "joining the store") + ") failed within " +
                             std::to_string(timeout.count() / 1000) + " s: " + message_of(e) +
                             ". Check MASTER_ADDR/MASTER_PORT, that the port is free on rank 0's host, and that every "
                             "rank was started");
  }
  // torchrun's agent store is shared between restart attempts (and with
  // the agent itself): scope our keys the way torch.distributed does.
  if (context.agent_store) s.store = c10d_compat::with_prefix("/worker/attempt_" + context.restart_count, s.store);
  s.store = c10d_compat::with_prefix("bla/", s.store);

  if (device.is_cuda()) {
#if defined(BLA_HAVE_NCCL)
    s.backend = c10d_compat::make_nccl(s.store, context.rank, context.world_size, timeout);
    s.backend_name = "nccl";
#else
    throw std::runtime_error(
        "distributed training on " + device.str() +
        " needs NCCL, which this build lacks (LibTorch without CUDA, or nccl.h not on the include path)");
#endif
  } else if (device.is_cpu()) {
#if defined(BLA_HAVE_GLOO)
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    const std::string& addr = context.master_addr;
    const bool one_host = context.world_size == context.local_world_size &&
                          (addr == "127.0.0.1" || addr == "localhost" || addr == "::1");
    try {
      s.backend = c10d_compat::make_gloo(s.store, context.rank, context.world_size, timeout,
                                         ifname != nullptr ? ifname : "", one_host);
    } catch (const std::exception& e) {
      throw std::runtime_error(s.who() + ": creating the Gloo process group failed: " + message_of(e) +
                               ". Every rank must get here within run.dist_timeout_s; across hosts, set "
                               "GLOO_SOCKET_IFNAME to the network interface to use");
    }
    s.backend_name = "gloo";
#else
    throw std::runtime_error(
        "distributed training on the CPU needs Gloo, which this build lacks (CMake did not find gloo/algorithm.h, "
        "as with PyTorch's wheels); install Gloo's headers (Debian: libgloo-dev) and rebuild, or train on CUDA "
        "devices, which use NCCL");
#endif
  } else {
    throw std::runtime_error("distributed training supports cpu and cuda devices, not " + device.str());
  }
}

ProcessGroup::~ProcessGroup() {
  if (impl_ && impl_->backend && impl_->healthy) {
    try {
      c10d_compat::shutdown(*impl_->backend);
    } catch (...) {
      // Leaving anyway: a failed shutdown must not hide the run's own error.
    }
  }
}

int ProcessGroup::rank() const { return impl_->context.rank; }
int ProcessGroup::size() const { return impl_->context.world_size; }
const c10::Device& ProcessGroup::device() const { return impl_->device; }
std::string ProcessGroup::backend_name() const { return impl_->backend_name; }

PendingCollective ProcessGroup::all_reduce_sum_async(at::Tensor& tensor) {
  std::vector<at::Tensor> tensors{tensor};
  c10::intrusive_ptr<c10d::Work> work;
  try {
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    work = impl_->backend->allreduce(tensors, options);
  } catch (const std::exception& e) {
    impl_->fail("all-reduce", e);
  }
  Impl* impl = impl_.get();
  return PendingCollective([impl, work] { impl->wait(work, "all-reduce"); });
}

void ProcessGroup::all_reduce_sum(at::Tensor& tensor) { all_reduce_sum_async(tensor).wait(); }

std::vector<double> ProcessGroup::all_reduce_sum(const std::vector<double>& values) {
  auto tensor = torch::tensor(values, torch::kFloat64).to(impl_->device);
  all_reduce_sum(tensor);
  tensor = tensor.cpu();
  return std::vector<double>(tensor.data_ptr<double>(), tensor.data_ptr<double>() + tensor.numel());
}

void ProcessGroup::broadcast(std::vector<at::Tensor>& tensors, int root) {
  // c10d's broadcast takes one tensor per device: flatten each dtype's
  // tensors into one buffer, send it, and copy the pieces back.
  torch::NoGradGuard no_grad;
  std::map<c10::ScalarType, std::vector<at::Tensor*>> by_dtype;
  for (auto& t : tensors) by_dtype[t.scalar_type()].push_back(&t);
  for (auto& [dtype, group] : by_dtype) {
    std::vector<at::Tensor> flat_parts;
    for (auto* t : group) flat_parts.push_back(t->detach().reshape({-1}));
    std::vector<at::Tensor> buffer{torch::cat(flat_parts).to(impl_->device)};
    c10::intrusive_ptr<c10d::Work> work;
    try {
      c10d::BroadcastOptions options;
      options.rootRank = root;
      work = impl_->backend->broadcast(buffer, options);
    } catch (const std::exception& e) {
      impl_->fail("broadcast", e);
    }
    impl_->wait(work, "broadcast");
    int64_t offset = 0;
    for (auto* t : group) {
      t->detach().copy_(buffer[0].narrow(0, offset, t->numel()).view_as(*t));
      offset += t->numel();
    }
  }
}

int64_t ProcessGroup::broadcast_value(int64_t value, int root) {
  std::vector<at::Tensor> one{torch::full({1}, value, torch::TensorOptions().dtype(torch::kInt64).device(impl_->device))};
  broadcast(one, root);
  return one[0].item<int64_t>();
}

void ProcessGroup::barrier() {
  // An all-reduce of one number: the same on every backend and version
  // (c10d's own barrier guesses the CUDA device from the rank on NCCL).
  auto one = torch::ones({1}, torch::TensorOptions().dtype(torch::kFloat32).device(impl_->device));
  all_reduce_sum(one);
  (void)one.item<float>();  // on CUDA: the host waits for the collective too
}

}  // namespace bla::dist
