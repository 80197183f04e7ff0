// Where a training step's time goes: LibTorch's profiler over a few steps of
// a run (train.profile_steps from train.profile_start), written into the run
// directory as profile.txt (the operators the host ran and the kernels the
// GPU ran, by total time, with the GPU's busy share of the profiled wall
// time) and, where the LibTorch build has Kineto, profile.json (a Chrome
// trace for chrome://tracing or Perfetto).
#pragma once

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bla::train {

struct StepProfileOptions {
  int64_t start = 10;  // steps done before profiling starts
  int64_t steps = 0;   // steps profiled (0: none)
};

// One row of profile.txt: every event of one name on one side (host or GPU).
struct ProfileRow {
  std::string name;
  bool on_gpu = false;
  int64_t calls = 0;
  double total_us = 0;  // summed durations (a host operator's includes the operators it calls)
};

// The rows of a profile, GPU kernels first, each side by total time.
std::vector<ProfileRow> sort_profile(std::vector<ProfileRow> rows);
// profile.txt's text: `steps` steps over `wall_us` of wall time; at most `top` rows a side.
std::string profile_table(const std::vector<ProfileRow>& rows, int64_t first_step, int64_t steps, double wall_us,
                          size_t top = 40);

class StepProfiler {
 public:
  using Log = std::function<void(const std::string&)>;
  // No profiling where options.steps is 0 or run_dir is "" (a process that writes no files).
  StepProfiler(StepProfileOptions options, std::string run_dir, torch::Device device, Log log);
  ~StepProfiler();
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;

  // Around each step: `done` is the number of steps done before it (before_step) or after it (after_step).
  void before_step(int64_t done);
  void after_step(int64_t done);
  // Writes what was profiled if the run ends inside the window.
  void finish();

 private:
  void stop();

  StepProfileOptions options_;
  std::string run_dir_;
  torch::Device device_;
  Log log_;
  bool active_ = false;
  bool written_ = false;
  int64_t first_ = 0, done_ = 0;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace bla::train
