#include "bla/train/metrics.h"

#include "bla/util/files.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace bla::train {

MetricsLog::MetricsLog(const std::string& run_dir, int64_t resume_step)
    : path_(util::join_path(run_dir, "metrics.jsonl")) {
  if (util::path_exists(path_)) {
    std::istringstream in(util::read_file(path_));
    std::string kept;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (record.is_discarded()) continue;  // a line torn by a crash
      if (record.value("step", int64_t{0}) <= resume_step) kept += line + "\n";
    }
    util::write_file_atomically(path_, kept);
  }
  out_.open(path_, std::ios::app);
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<int64_t>(std::llround(seconds));
  char buffer[32];
  if (s >= 3600) {
    std::snprintf(buffer, sizeof(buffer), "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s % 3600 / 60));
  } else if (s >= 60) {
    std::snprintf(buffer, sizeof(buffer), "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buffer, sizeof(buffer), "%llds", static_cast<long long>(s));
  }
  return buffer;
}

std::string format_count(double value) {
  char buffer[32];
  if (value >= 1e9) std::snprintf(buffer, sizeof(buffer), "%.2fG", value / 1e9);
  else if (value >= 1e6) std::snprintf(buffer, sizeof(buffer), "%.2fM", value / 1e6);
  else if (value >= 1e3) std::snprintf(buffer, sizeof(buffer), "%.1fk", value / 1e3);
  else std::snprintf(buffer, sizeof(buffer), "%.0f", value);
  return buffer;
}

}  // namespace bla::train
