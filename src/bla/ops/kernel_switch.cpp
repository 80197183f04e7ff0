#include "bla/ops/kernel_switch.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>
#include <set>

namespace bla::ops {

void note_kernel_fallback(const std::string& op, const std::string& why) {
  static std::mutex mutex;
  static std::set<std::string> seen;
  std::lock_guard<std::mutex> lock(mutex);
  if (seen.insert(op + "\n" + why).second) {
    spdlog::warn("{}: using the LibTorch form on CUDA ({})", op, why);
  }
}

bool kernels_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("BLA_KERNELS");
    return value == nullptr || std::string(value) != "0";
  }();
  return enabled;
}

bool model_kernels_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("BLA_MODEL_KERNELS");
    return kernels_enabled() && (value == nullptr || std::string(value) != "0");
  }();
  return enabled;
}

bool gla_head_blocks_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("BLA_GLA_HEAD_BLOCKS");
    return value == nullptr || std::string(value) != "0";
  }();
  return enabled;
}

}  // namespace bla::ops
