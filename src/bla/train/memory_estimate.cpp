#include "bla/train/memory_estimate.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#ifdef BLA_HAVE_CUDA_KERNELS
#include <cuda_runtime_api.h>
#endif

namespace bla::train {

MemoryEstimate estimate_training_memory(const config::Config& config, int64_t vocab, int64_t seq_len) {
  const auto& m = config.model;
  const double d = static_cast<double>(m.d_model);
  const double layers = static_cast<double>(m.layers);
  const double hidden = std::ceil(m.mlp_ratio * d * 2.0 / 3.0 / 8.0) * 8.0;
  double per_layer = 4 * d * d;                     // a mixer's projections: at least q, k, v and out
  if (m.mlp == "swiglu") per_layer += 3 * d * hidden;  // gate, up, down
  MemoryEstimate e;
  e.parameters = static_cast<double>(vocab) * d * (m.tie_embeddings ? 1 : 2) + layers * per_layer;
  e.state_bytes = 16 * e.parameters;  // float32 parameter, gradient, two moments
  const double micro_batch = static_cast<double>(config.train.batch_size / std::max<int64_t>(1, config.train.grad_accum));
  const double tokens = micro_batch * static_cast<double>(seq_len);
  e.activation_bytes = tokens * layers * (4 * d + (m.mlp == "swiglu" ? 2 * hidden : 0)) * 2;  // bf16 at least
  return e;
}

double device_memory_bytes(const c10::Device& device) {
#ifdef BLA_HAVE_CUDA_KERNELS
  if (device.is_cuda()) {
    cudaDeviceProp props{};
    if (cudaGetDeviceProperties(&props, device.has_index() ? device.index() : 0) == cudaSuccess) {
      return static_cast<double>(props.totalGlobalMem);
    }
    (void)cudaGetLastError();
    return 0;
  }
#endif
  if (device.is_cuda()) return 0;  // unknown: no check
  const double pages = static_cast<double>(::sysconf(_SC_PHYS_PAGES));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  return pages > 0 && page > 0 ? pages * page : 0;
}

double memory_limit_bytes(const config::Config& config, const c10::Device& device) {
  if (config.run.memory_limit_gb > 0) return config.run.memory_limit_gb * 1024.0 * 1024.0 * 1024.0;
  return device_memory_bytes(device);
}

std::string memory_limit_name(const config::Config& config, const c10::Device& device) {
  return config.run.memory_limit_gb > 0 ? "run.memory_limit_gb" : device.str();
}

void check_memory_fits(const MemoryEstimate& estimate, double available, const std::string& where) {
  if (available <= 0 || estimate.total_bytes() <= available) return;
  auto gib = [](double bytes) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
    return std::string(text);
  };
  char params[32];
  std::snprintf(params, sizeof(params), "%.3g", estimate.parameters);
  throw DoesNotFitError("this run needs at least " + gib(estimate.total_bytes()) + " (" + params +
                            " parameters with gradients and AdamW moments: " + gib(estimate.state_bytes) +
                            "; activations: " + gib(estimate.activation_bytes) + ") but " + where + " has " +
                            gib(available) +
                            ": lower model.d_model, model.layers, model.vocab_size or the task's vocabulary, "
                            "train.batch_size or the sequence length (or raise train.grad_accum or run.memory_limit_gb)");
}

}  // namespace bla::train
