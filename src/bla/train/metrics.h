// What a run reports while it goes: a progress line a person can read, and
// one JSON object per log step in <run>/metrics.jsonl for machines.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <string>

namespace bla::train {

class MetricsLog {
 public:
  // Opens <run_dir>/metrics.jsonl for appending. When resuming from
  // `resume_step`, drops the lines logged after that step (they are redone).
  MetricsLog(const std::string& run_dir, int64_t resume_step);
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

// "1h02m", "3m05s", "42s".
std::string format_duration(double seconds);
// "12.3k", "4.56M".
std::string format_count(double value);

}  // namespace bla::train
