#include "bla/train/step_profiler.h"

#include "bla/compat.h"
#include "bla/util/files.h"

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

namespace bla::train {

namespace {

namespace profiler = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

constexpr size_t kNameWidth = 110;  // kernel names (templates) are cut here, "..." marking the cut

std::string shorten(const std::string& name) {
  return name.size() <= kNameWidth ? name : name.substr(0, kNameWidth - 3) + "...";
}

void sync_device(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

std::vector<ProfileRow> rows_of(const profiler::ProfilerResult& result) {
  std::map<std::pair<bool, std::string>, ProfileRow> by_name;
  for (const auto& event : result.events()) {
    const double us = compat::profiler_event_us(event);
    if (!(us >= 0)) continue;
    const bool gpu = event.deviceType() == c10::DeviceType::CUDA;
    auto& row = by_name[{gpu, event.name()}];
    row.name = event.name();
    row.on_gpu = gpu;
    row.calls += 1;
    row.total_us += us;
  }
  std::vector<ProfileRow> rows;
  rows.reserve(by_name.size());
  for (auto& entry : by_name) rows.push_back(std::move(entry.second));
  return rows;
}

}  // namespace

std::vector<ProfileRow> sort_profile(std::vector<ProfileRow> rows) {
  std::stable_sort(rows.begin(), rows.end(), [](const ProfileRow& a, const ProfileRow& b) {
    if (a.on_gpu != b.on_gpu) return a.on_gpu;
    if (a.total_us != b.total_us) return a.total_us > b.total_us;
    return a.name < b.name;
  });
  return rows;
}

std::string profile_table(const std::vector<ProfileRow>& unsorted, int64_t first_step, int64_t steps, double wall_us,
                          size_t top) {
  const auto rows = sort_profile(unsorted);
  double gpu_us = 0;
  size_t gpu_rows = 0;
  for (const auto& row : rows) {
    if (!row.on_gpu) continue;
    gpu_us += row.total_us;
    gpu_rows += 1;
  }
  const double per = steps > 0 ? static_cast<double>(steps) : 1.0;
  std::string text;
  char line[512];
  std::snprintf(line, sizeof line, "steps %lld..%lld (%lld profiled): %.3f ms of wall time, %.3f ms a step\n",
                static_cast<long long>(first_step + 1), static_cast<long long>(first_step + steps),
                static_cast<long long>(steps), wall_us / 1e3, wall_us / 1e3 / per);
  text += line;
  if (gpu_rows > 0) {
    std::snprintf(line, sizeof line,
                  "GPU busy: %.3f ms a step, %.1f%% of the wall time (kernels, copies and fills, summed)\n",
                  gpu_us / 1e3 / per, wall_us > 0 ? 100 * gpu_us / wall_us : 0.0);
    text += line;
    text += "\nGPU (kernels, copies, fills), by total time\n";
    text += "  ms a step   share  calls a step  name\n";
    size_t shown = 0;
    for (const auto& row : rows) {
      if (!row.on_gpu || shown++ >= top) continue;
      std::snprintf(line, sizeof line, "%11.4f  %5.1f%%  %12.1f  %s\n", row.total_us / 1e3 / per,
                    gpu_us > 0 ? 100 * row.total_us / gpu_us : 0.0, static_cast<double>(row.calls) / per,
                    shorten(row.name).c_str());
      text += line;
    }
    if (gpu_rows > top) text += "  (" + std::to_string(gpu_rows - top) + " more)\n";
  } else {
    text += "GPU: no device events (a CPU run, or a LibTorch build without Kineto's CUDA tracing)\n";
  }
  text += "\nhost operators, by total time (an operator's time includes the operators it calls)\n";
  text += "  ms a step  calls a step  name\n";
  size_t shown = 0, host_rows = 0;
  for (const auto& row : rows) {
    if (row.on_gpu) continue;
    host_rows += 1;
    if (shown++ >= top) continue;
    std::snprintf(line, sizeof line, "%11.4f  %12.1f  %s\n", row.total_us / 1e3 / per,
                  static_cast<double>(row.calls) / per, shorten(row.name).c_str());
    text += line;
  }
  if (host_rows > top) text += "  (" + std::to_string(host_rows - top) + " more)\n";
  return text;
}

StepProfiler::StepProfiler(StepProfileOptions options, std::string run_dir, torch::Device device, Log log)
    : options_(options), run_dir_(std::move(run_dir)), device_(device), log_(std::move(log)) {}

StepProfiler::~StepProfiler() {
  if (!active_) return;
  try {
    profiler::disableProfiler();  // the run stopped inside the window with an error: nothing is written
  } catch (...) {
  }
}

void StepProfiler::before_step(int64_t done) {
  if (active_ || written_ || options_.steps <= 0 || run_dir_.empty() || done != options_.start) return;
  sync_device(device_);  // earlier steps' work stays out of the window
  const ProfilerConfig config(ProfilerState::KINETO);
  std::set<ActivityType> activities{ActivityType::CPU};
  if (device_.is_cuda()) activities.insert(ActivityType::CUDA);
  profiler::prepareProfiler(config, activities);
  profiler::enableProfiler(config, activities);
  active_ = true;
  first_ = done;
  started_ = std::chrono::steady_clock::now();
}

void StepProfiler::after_step(int64_t done) {
  done_ = done;
  if (active_ && done - first_ >= options_.steps) stop();
}

void StepProfiler::finish() {
  if (active_) stop();
}

void StepProfiler::stop() {
  sync_device(device_);
  const double wall_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started_).count();
  active_ = false;
  written_ = true;
  const auto result = profiler::disableProfiler();
  const int64_t steps = done_ - first_;
  const std::string table_path = util::join_path(run_dir_, "profile.txt");
  util::write_file_atomically(table_path, profile_table(rows_of(*result), first_, steps, wall_us));
  std::string trace = "profile.json";
  try {
    result->save(util::join_path(run_dir_, "profile.json"));
  } catch (const c10::Error&) {
    trace = "no profile.json (this LibTorch has no Kineto trace export)";
  }
  char line[256];
  std::snprintf(line, sizeof line, "profile: steps %lld..%lld in profile.txt, %s", static_cast<long long>(first_ + 1),
                static_cast<long long>(done_), trace.c_str());
  log_(line);
}

}  // namespace bla::train
