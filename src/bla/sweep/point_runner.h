// Runs a sweep's points as bla-train processes: one at a time, or several
// side by side (one per GPU with CUDA_VISIBLE_DEVICES, or N CPU jobs).
//
// Layout under the sweep's folder: runs/<point>/ (the run directory),
// logs/<point>.log (everything bla-train printed, every attempt appended) and
// results.csv. A point whose run directory has summary.json is skipped; every
// other point runs with --resume auto, so an interrupted one continues from
// its newest checkpoint. A failed point is recorded (status, exit code, last
// lines of its output) and the others go on.
#pragma once

#include "bla/sweep/grid.h"
#include "bla/sweep/results_csv.h"

#include <chrono>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace bla::sweep {

struct RunnerOptions {
  std::string bla_train;             // the bla-train executable
  std::string out_dir;               // the sweep's folder
  // One entry per process slot: the CUDA_VISIBLE_DEVICES of runs in that
  // slot, or "" to leave the environment as it is (CPU jobs).
  std::vector<std::string> slots = {""};
  int tail_lines = 6;                // lines of output kept for a failed point
  // Points that differ only in member keys (config/member_keys.h) train as
  // one ensemble of at most this many (one bla-train process, --member per
  // point); 1: one process per point.
  int ensemble = 1;
  // Outcomes this bla-sweep already has for points that finished or stopped
  // for good in an earlier wave of the same invocation (a sweep with select,
  // sweep/waves.h): kept as they are (a point that ran keeps action "ran"),
  // not run again.
  std::map<std::string, PointOutcome> settled;
  // A wave of a sweep with select (1, 2, ...; 0: not one): its progress lines
  // name it, and the points named in `later` are rows of results.csv left
  // pending for a later wave, not run now.
  int wave = 0;
  std::set<std::string> later;
  // --finish-by: with finish_by > 0, no process starts once less time is left
  // before finish_by seconds after `started` than the longest process of this
  // bla-sweep took (longest_process, seconds, carried from earlier waves) or,
  // where that is shorter, than expected_process (--expect, seconds; 0: the
  // first process always starts). The points not started stay pending.
  double finish_by = 0;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  double longest_process = 0;
  double expected_process = 0;
};

// "auto" (at most 16 points per ensemble; bla-train refuses, naming the size
// that fits, where the device has too little memory), "off" (1) or a count.
// Throws util::ArgumentError otherwise.
int parse_ensemble(const std::string& value);

std::string run_dir_of(const std::string& out_dir, const Point& point);
std::string log_file_of(const std::string& out_dir, const Point& point);

// bla-train's arguments for a point (after the program name):
// BASE --set k=v ... --out RUN_DIR --resume auto.
std::vector<std::string> train_arguments(const SweepSpec& spec, const Point& point, const std::string& run_dir);

// The points of `queue` (indices into grid.points) as the processes that run
// them: points that differ only in member keys and are alike in having a
// checkpoint to resume (or not) form ensembles of at most `most`; the rest
// run one per process. Processes that resume checkpoints come first, then
// the new ones, each in the order of their first point.
std::vector<std::vector<size_t>> plan_processes(const Grid& grid, const std::vector<size_t>& queue,
                                                const std::vector<bool>& resumable, int most);

// bla-train's arguments for points trained as one ensemble: BASE --set
// (the shared overrides) ... --member k=v,... and --out RUN_DIR per point,
// --resume auto.
std::vector<std::string> ensemble_arguments(const SweepSpec& spec, const std::vector<const Point*>& points,
                                            const std::vector<std::string>& run_dirs);
// The log of an ensemble's process: logs/<first point>+<n-1 more>.log.
std::string ensemble_log_of(const std::string& out_dir, const Point& first, size_t members);

// The command as a shell would take it (arguments quoted where needed).
std::string shell_command(const std::string& program, const std::vector<std::string>& args);

// What a point runs (base config and overrides) as JSON text, kept in its
// run directory as sweep_point.json so that a later sweep never skips or
// resumes a run made with other settings.
std::string point_record(const SweepSpec& spec, const Point& point);

// The point as found on disk: done (skipped) when its run directory holds a
// readable summary.json, stale when its sweep_point.json records other
// settings (the sweep file changed; nothing is run), else pending.
PointOutcome existing_outcome(const SweepSpec& spec, const Point& point, const std::string& run_dir);
// True when the run directory holds a checkpoint to resume from.
bool has_checkpoint(const std::string& run_dir);

// "1h02m03s", "4m05s" or "6s".
std::string format_duration(double seconds);

// The status a bla-train exit code stands for (its exit codes: 0 done,
// 2 config error, 3 checkpoint error, 4 non-finite loss, others failed).
std::string status_of_exit(int exit_code);

struct SweepResult {
  std::vector<PointOutcome> outcomes;  // one per grid point, in grid order
  bool interrupted = false;            // SIGINT/SIGTERM stopped the sweep
  bool out_of_time = false;            // RunnerOptions::finish_by held back a process
  double longest_process = 0;          // seconds: RunnerOptions::longest_process or longer, from this call
};

// RunnerOptions::finish_by: true, said on `log` with the `held` processes
// not started, when less time is left before it than `longest_process` (or
// RunnerOptions::expected_process, where that is longer).
bool finish_by_reached(const RunnerOptions& options, double longest_process, size_t held, std::ostream& log);

// Runs every point not yet done (nor settled, nor later), rewriting
// results.csv (a row for every point of `grid`) after each one. Progress
// lines go to `log`.
SweepResult run_points(const SweepSpec& spec, const Grid& grid, const RunnerOptions& options, std::ostream& log);

}  // namespace bla::sweep
