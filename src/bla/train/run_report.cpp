#include "bla/train/run_report.h"

#include "bla/util/files.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <vector>

namespace bla::train {

std::shared_ptr<spdlog::logger> make_run_logger(const std::string& run_dir, bool quiet, const std::string& name) {
  std::vector<spdlog::sink_ptr> sinks;
  if (run_dir.empty()) {  // dist: ranks other than 0 print only warnings and errors, and write no file
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink->set_level(spdlog::level::warn);
    auto logger = std::make_shared<spdlog::logger>(name, sink);
    logger->set_pattern("[%H:%M:%S] %v");
    return logger;
  }
  if (!quiet) sinks.push_back(std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
  const std::string path = util::join_path(run_dir, "train.log");
  if (util::path_exists(path)) {  // a resumed run appends; a line marks where this process began
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
    auto marker = std::make_shared<spdlog::logger>(name + "-marker", file);
    marker->set_pattern("%v");
    const std::time_t now = std::time(nullptr);
    char stamp[64];
    std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", std::localtime(&now));
    marker->info("---- bla-train started {} ----", stamp);
    marker->flush();
  }
  sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(path));
  auto logger = std::make_shared<spdlog::logger>(name, sinks.begin(), sinks.end());
  logger->set_pattern("[%H:%M:%S] %v");
  logger->flush_on(spdlog::level::info);
  return logger;
}

std::string metrics_text(const std::map<std::string, double>& values) {
  std::string line;
  for (const auto& [key, value] : values) {
    char buffer[96];
    if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) >= 1 && std::fabs(value) < 1e15) {
      std::snprintf(buffer, sizeof(buffer), " | %s %lld", key.c_str(), static_cast<long long>(value));
    } else {
      std::snprintf(buffer, sizeof(buffer), " | %s %.4f", key.c_str(), value);
    }
    line += buffer;
  }
  return line;
}

int64_t peak_memory_bytes(const torch::Device& device) {
#ifdef BLA_HAVE_CUDA_KERNELS
  if (device.is_cuda()) {
    const auto index = device.has_index() ? device.index() : c10::cuda::current_device();
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    return stats.allocated_bytes[0].peak;  // aggregate over pool kinds
  }
#endif
  (void)device;
  return 0;
}

std::string nonfinite_message(const StepTotals& t) {
  const bool loss_bad = !std::isfinite(t.first_bad_loss);
  return "step " + std::to_string(t.first_bad_step) + ": " + (loss_bad ? "loss" : "gradient norm") +
         " is not finite (loss " + std::to_string(t.first_bad_loss) + ", gradient norm " +
         std::to_string(t.first_bad_grad_norm) + ")";
}

RunRecords::RunRecords(const std::string& run_dir, int64_t resume_step, bool tensorboard) : metrics_(run_dir, resume_step) {
  if (tensorboard) tensorboard_.emplace(run_dir);
}

void RunRecords::write(const std::string& split, int64_t step, const nlohmann::json& record) {
  metrics_.write(record);
  if (!tensorboard_) return;
  for (const auto& [key, value] : record.items()) {
    if (key != "step" && key != "split" && value.is_number()) tensorboard_->scalar(split + "/" + key, step, value.get<double>());
  }
  tensorboard_->flush();
}

}  // namespace bla::train
