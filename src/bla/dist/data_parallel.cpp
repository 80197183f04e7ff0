#include "bla/dist/data_parallel.h"

#include "bla/dist/grad_sync.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace bla::dist {

namespace {

c10::Device device_for_rank(const DistContext& context, const c10::Device& requested) {
  if (!context.active() || !requested.is_cuda()) return requested;
  if (requested.has_index()) {
    if (context.local_world_size > 1) {
      throw config::ConfigError("run.device is " + requested.str() + " but " +
                                std::to_string(context.local_world_size) +
                                " ranks share this host (LOCAL_WORLD_SIZE); use cuda or auto, and each rank takes "
                                "cuda:LOCAL_RANK (restrict the GPUs with CUDA_VISIBLE_DEVICES)");
    }
    return requested;
  }
  const auto visible = static_cast<int>(torch::cuda::device_count());
  if (context.local_rank >= visible) {
    throw config::ConfigError("rank " + std::to_string(context.rank) + " has LOCAL_RANK " +
                              std::to_string(context.local_rank) + " but sees only " + std::to_string(visible) +
                              " CUDA device(s); start at most one process per GPU (--nproc-per-node)");
  }
  return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(context.local_rank));
}

// "RANK:STEP" (the test hook); anything else is a mistake worth stopping for.
void parse_die_hook(int& rank, int64_t& step) {
  const char* text = std::getenv("BLA_TEST_DIE_AT_STEP");
  if (text == nullptr || text[0] == '\0') return;
  long long r = -1, s = 0;
  char tail = 0;
  if (std::sscanf(text, "%lld:%lld%c", &r, &s, &tail) != 2 || r < 0 || s < 1) {
    throw std::invalid_argument(std::string("BLA_TEST_DIE_AT_STEP='") + text +
                                "': expected RANK:STEP, e.g. 1:3 (a test hook; unset it for real runs)");
  }
  rank = static_cast<int>(r);
  step = s;
}

}  // namespace

DataParallel::DataParallel(const config::Config& config, const c10::Device& requested)
    : context_(DistContext::from_environment()),
      device_(device_for_rank(context_, requested)),
      bucket_mb_(config.train.bucket_mb) {
  const int64_t per_step_shares = context_.world_size * config.train.grad_accum;
  if (config.train.batch_size % per_step_shares != 0) {
    throw config::ConfigError("train.batch_size (" + std::to_string(config.train.batch_size) +
                              ") must be divisible by WORLD_SIZE (" + std::to_string(context_.world_size) +
                              ") x train.grad_accum (" + std::to_string(config.train.grad_accum) + ") = " +
                              std::to_string(per_step_shares) +
                              ": every rank takes an equal share of every micro-batch; change train.batch_size or "
                              "the number of processes");
  }
  parse_die_hook(die_rank_, die_step_);
  if (device_.is_cuda() && device_.has_index()) {
    // Later tensors made on plain "cuda" (and c10d's own guesses) land here.
    c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->setDevice(device_);
  }
  if (context_.active()) {
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(config.run.dist_timeout_s * 1000.0));
    group_ = std::make_unique<ProcessGroup>(context_, device_, timeout);
  }
}

DataParallel::~DataParallel() = default;

std::string DataParallel::describe() const {
  if (!active()) return "";
  char line[256];
  std::snprintf(line, sizeof(line), "distributed: %d ranks (%s), rank %d on %s; each rank takes 1/%d of every batch",
                world_size(), group_->backend_name().c_str(), rank(), device_.str().c_str(), world_size());
  std::string out = line;
  if (grad_sync_) {
    std::snprintf(line, sizeof(line), "; gradients in %lld bucket(s) of <= %g MB",
                  static_cast<long long>(grad_sync_->num_buckets()), bucket_mb_);
    out += line;
  }
  return out;
}

std::vector<int64_t> DataParallel::shard(const std::vector<int64_t>& global) const {
  if (!active()) return global;
  const auto n = static_cast<int64_t>(global.size());
  const int64_t begin = n * rank() / world_size(), end = n * (rank() + 1) / world_size();
  return std::vector<int64_t>(global.begin() + begin, global.begin() + end);
}

void DataParallel::broadcast(std::vector<at::Tensor> parameters) {
  if (active()) group_->broadcast(parameters, 0);
}

void DataParallel::attach(std::vector<at::Tensor> parameters) {
  if (!active()) return;
  grad_sync_ = std::make_unique<GradSync>(std::move(parameters), *group_, bucket_mb_);
  const char* timing = std::getenv("BLA_DIST_TIMING");
  grad_sync_->set_synchronize_for_timing(timing != nullptr && std::string(timing) == "1");
}

void DataParallel::begin_micro_step(bool last) {
  if (grad_sync_) grad_sync_->begin_micro_step(last);
}

void DataParallel::finish_gradients() {
  steps_ += 1;
  if (rank() == die_rank_ && steps_ == die_step_) {
    std::fprintf(stderr, "bla-train: BLA_TEST_DIE_AT_STEP: rank %d kills itself in step %lld (test hook)\n", rank(),
                 static_cast<long long>(steps_));
    std::fflush(stderr);
    std::raise(SIGKILL);
  }
  if (grad_sync_) grad_sync_->finish();
}

std::vector<double> DataParallel::sum(const std::vector<double>& values) {
  return active() ? group_->all_reduce_sum(values) : values;
}

void DataParallel::sum_(at::Tensor& tensor) {
  if (active()) group_->all_reduce_sum(tensor);
}

void DataParallel::barrier() {
  if (active()) group_->barrier();
}

void DataParallel::check_same(int64_t value, const std::string& what) {
  if (!active()) return;
  const int64_t on_main = group_->broadcast_value(value, 0);
  if (on_main != value) {
    throw std::runtime_error("rank " + std::to_string(rank()) + " has " + what + " " + std::to_string(value) +
                             " but rank 0 has " + std::to_string(on_main) +
                             "; every rank must see the same files (a shared run directory)");
  }
}

nlohmann::json DataParallel::summary() const {
  nlohmann::json out = {{"world_size", world_size()}};
  if (active()) {
    out["backend"] = group_->backend_name();
    out["bucket_mb"] = bucket_mb_;
    if (grad_sync_) {
      out["buckets"] = grad_sync_->num_buckets();
      out["allreduce_wait_s"] = grad_sync_->wait_seconds();
    }
  }
  return out;
}

}  // namespace bla::dist
