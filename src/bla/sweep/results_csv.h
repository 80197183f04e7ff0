// results.csv: one row per point, its overrides as columns beside the
// numbers of its summary.json. Rewritten (atomically) after every finished
// point, so it is always a complete, readable table of the sweep so far.
#pragma once

#include "bla/sweep/grid.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace bla::sweep {

// What happened to one point.
struct PointOutcome {
  // pending | running | done | stale | failed | config_error | checkpoint_error | nonfinite | killed
  std::string status = "pending";
  std::string action;     // skipped (summary.json existed) | ran | resumed
  int exit_code = -1;     // bla-train's exit status; -1 when it did not run (or died by a signal)
  std::string error;      // the last lines bla-train printed, " | "-joined, for failed points
  std::string run_dir;
  nlohmann::json summary; // the run's summary.json (null until done)
};

// The CSV text: name, group, status, action, exit_code, the grid's columns,
// then task, steps, test_<metric> for every test metric any summary has,
// parameters, state_total, state_per_layer (";"-joined), context,
// wall_time_s, device, run_dir, error.
std::string results_csv(const Grid& grid, const std::vector<PointOutcome>& outcomes);

// One CSV field: quoted (with doubled quotes) when it holds , " or a newline.
std::string csv_field(const std::string& text);

}  // namespace bla::sweep
