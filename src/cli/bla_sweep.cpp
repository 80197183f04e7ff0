// bla-sweep SWEEP.yaml [--dry-run] [--jobs N | --gpus LIST] [--ensemble auto|N|off] [--out DIR] [--bla-train PATH]
//           [--finish-by SECONDS [--expect SECONDS]]
//
// Runs every point of a sweep file (src/bla/sweep/sweep_file.h) with the
// bla-train beside this program, skips finished points, resumes interrupted
// ones, and writes DIR/results.csv. With a sweep file's select, the trials run
// first, then the other seeds at the value they chose (sweep/selection.h), in
// waves of one process per slot, the choices made again after each
// (sweep/waves.h).
// Needs neither LibTorch nor the library.
// Exit codes: 0 every point done, 1 some point failed, 2 sweep file or usage
// error, 5 stopped for --finish-by with points left (none failed), 130
// interrupted.
#include "bla/config/section.h"
#include "bla/sweep/grid.h"
#include "bla/sweep/point_runner.h"
#include "bla/sweep/selection.h"
#include "bla/sweep/sweep_file.h"
#include "bla/sweep/waves.h"
#include "bla/util/exit_codes.h"
#include "bla/util/files.h"
#include "cli/arguments.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

namespace {

// --finish-by held processes back and no point failed: run bla-sweep again to go on.
constexpr int kStoppedForTime = 5;

std::string own_directory() {
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return ".";
  path[n] = '\0';
  return bla::util::parent_path(path);
}

std::string default_out_dir(const bla::sweep::SweepSpec& spec) {
  if (!spec.out_dir.empty()) return spec.out_dir;
  std::string stem = bla::util::file_name(spec.file);
  if (auto dot = stem.rfind('.'); dot != std::string::npos && dot > 0) stem = stem.substr(0, dot);
  return bla::util::join_path("runs/sweeps", stem);
}

// "0,1,3" -> {"0", "1", "3"}
// "a,b,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  std::string item;
  for (char c : list + ",") {
    if (c != ',') {
      item += c;
    } else if (!item.empty()) {
      out.push_back(item);
      item.clear();
    }
  }
  return out;
}

std::vector<std::string> split_gpus(const std::string& list) {
  std::vector<std::string> out;
  std::string item;
  for (char c : list + ",") {
    if (c != ',') {
      item += c;
      continue;
    }
    if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos) {
      throw bla::util::ArgumentError("--gpus: '" + list + "' is not a list of GPU indices, e.g. --gpus 0,1");
    }
    out.push_back(item);
    item.clear();
  }
  return out;
}

// Every point as found on disk (done, stale or pending).
std::vector<bla::sweep::PointOutcome> outcomes_on_disk(const bla::sweep::SweepSpec& spec,
                                                       const bla::sweep::Grid& grid, const std::string& out_dir) {
  std::vector<bla::sweep::PointOutcome> outcomes;
  for (const auto& point : grid.points) {
    outcomes.push_back(bla::sweep::existing_outcome(spec, point, bla::sweep::run_dir_of(out_dir, point)));
  }
  return outcomes;
}

// describe_choices' lines that `told` does not hold yet, printed and added to it:
// after a wave, only the choices it changed.
void tell_choices(const bla::sweep::Selection& selection, const bla::sweep::Grid& grid,
                  const std::vector<bla::sweep::Stage>& stages, const std::vector<bla::sweep::PointOutcome>& known,
                  std::set<std::string>& told) {
  std::ostringstream text;
  bla::sweep::describe_choices(selection, grid, stages, known, text);
  std::istringstream lines(text.str());
  for (std::string line; std::getline(lines, line);) {
    if (told.insert(line).second) std::cout << line << "\n";
  }
  std::cout.flush();
}

// Per point of `grid`: its run directory holds a checkpoint (asked only of the pending ones).
std::vector<bool> checkpoints_of(const std::string& out_dir, const bla::sweep::Grid& grid,
                                 const std::vector<bla::sweep::PointOutcome>& known) {
  std::vector<bool> resumable;
  for (size_t i = 0; i < grid.points.size(); ++i) {
    resumable.push_back(known[i].status == "pending" &&
                        bla::sweep::has_checkpoint(bla::sweep::run_dir_of(out_dir, grid.points[i])));
  }
  return resumable;
}

// A sweep with select, wave after wave (sweep/waves.h); bla-sweep's exit status.
int run_in_waves(const bla::sweep::SweepSpec& spec, const bla::sweep::Grid& all,
                 const std::vector<bla::sweep::Stage>& stages, std::vector<bla::sweep::PointOutcome> known,
                 bla::sweep::RunnerOptions options) {
  const auto started = std::chrono::steady_clock::now();
  std::map<std::string, size_t> index;  // point name -> its index in `all`
  for (size_t i = 0; i < all.points.size(); ++i) index[all.points[i].name] = i;
  size_t runnable = 0, done = 0, stale = 0;
  for (const auto& point : bla::sweep::runnable_points(spec.select, all, stages, known).points) {
    const std::string& status = known[index.at(point.name)].status;
    ++runnable;
    done += status == "done";
    stale += status == "stale";
  }
  std::cout << "bla-sweep: " << all.points.size() << " points: " << done << " done already (skipped), "
            << runnable - done - stale << " to run now" << (stale ? ", " + std::to_string(stale) + " stale" : "")
            << ", " << all.points.size() - runnable << " held for a choice or not chosen; select: in waves of at most "
            << options.slots.size() << " process" << (options.slots.size() > 1 ? "es" : "")
            << " (one per slot), the choices made again after each; " << options.out_dir << std::endl;
  std::set<std::string> told;
  tell_choices(*spec.select, all, stages, known, told);
  bla::sweep::Wave wave;
  int waves = 0;
  bool stopped = false;  // --finish-by held a process back
  for (;;) {
    wave = bla::sweep::plan_wave(*spec.select, all, stages, known, checkpoints_of(options.out_dir, all, known),
                                 options.slots.size(), options.ensemble);
    if (wave.processes.empty() && waves > 0) break;
    // The first wave always starts, unless --expect says a process would not end in time.
    if (!wave.processes.empty() && (waves > 0 || options.expected_process > 0) &&
        bla::sweep::finish_by_reached(options, options.longest_process, wave.processes.size(), std::cout)) {
      // results.csv with this wave's rows too (seeds that the last choices made runnable).
      std::vector<bla::sweep::PointOutcome> rows;
      for (const auto& point : wave.grid.points) rows.push_back(known[index.at(point.name)]);
      bla::util::write_file_atomically(bla::util::join_path(options.out_dir, "results.csv"),
                                       bla::sweep::results_csv(wave.grid, rows));
      stopped = true;
      break;
    }
    // Nothing to run at all: one call for results.csv and its summary line, as without select.
    options.wave = wave.processes.empty() ? 0 : ++waves;
    options.later = wave.later;
    const auto result = bla::sweep::run_points(spec, wave.grid, options, std::cout);
    options.longest_process = result.longest_process;
    // Every point it ran, finished or stopped, keeps its outcome in the later waves (not run again).
    for (size_t j = 0; j < wave.grid.points.size(); ++j) {
      const size_t i = index.at(wave.grid.points[j].name);
      known[i] = result.outcomes[j];
      if (known[i].status != "pending") options.settled[all.points[i].name] = known[i];
    }
    if (result.interrupted) return 130;
    if (result.out_of_time) {
      stopped = true;
      break;
    }
    if (waves == 0) break;
    tell_choices(*spec.select, all, stages, known, told);
  }
  // The points of results.csv: every one not done makes the exit status 1.
  size_t ran = 0, skipped = 0, not_done = 0, pending = 0;
  for (const auto& point : wave.grid.points) {
    const auto& outcome = known[index.at(point.name)];
    if (outcome.status == "pending") ++pending;
    if (outcome.status != "done") ++not_done;
    else if (outcome.action == "skipped") ++skipped;
    else ++ran;
  }
  if (waves > 0 || stopped) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << "bla-sweep: " << (stopped ? "stopped for --finish-by after " : "finished in ")
              << bla::sweep::format_duration(seconds) << " (" << waves << " waves): "
              << ran << " ran, " << not_done << " not done (failed, stale or stopped), " << skipped << " skipped | "
              << bla::util::join_path(options.out_dir, "results.csv") << std::endl;
  }
  if (stopped) return not_done > pending ? 1 : kStoppedForTime;
  return not_done ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string program = "bla-sweep";
  CLI::App app{"bla-sweep: run every point of a sweep file with bla-train and collect results.csv. Runs points on "
               "the CPU (--jobs) or one per listed GPU (--gpus, needs a CUDA build of bla-train)."};
  std::string sweep_path, out, gpus, bla_train, only, ensemble = "auto";
  int jobs = 1;
  bool dry_run = false;
  app.add_option("sweep", sweep_path, "the sweep file (see configs/sweeps/)")->required();
  app.add_flag("--dry-run", dry_run, "list the points, their state (done, resume, new) and commands; run nothing");
  auto* jobs_option = app.add_option("--jobs", jobs, "points run side by side on the CPU (default 1)")
                          ->check(bla::cli::IntegerIn(1, 1024));
  app.add_option("--gpus", gpus,
                 "run one point per listed GPU, e.g. --gpus 0,1; repeat an index to run several on one GPU "
                 "(--gpus 0,1,0,1); sets CUDA_VISIBLE_DEVICES per run")
      ->excludes(jobs_option);
  app.add_option("--ensemble", ensemble,
                 "points that differ only in member keys (seed, learning rate, optimizer numbers) train as one "
                 "batched model of at most this many members: auto (16), a number, or off (one process per point)");
  app.add_option("--only", only, "run only the groups with these labels, e.g. --only gla,mamba2");
  app.add_option("--out", out, "the sweep's folder (default: the file's out_dir, else runs/sweeps/<file name>)");
  app.add_option("--bla-train", bla_train, "the bla-train program (default: the one beside bla-sweep)");
  double finish_by = 0;
  auto* finish_by_option =
      app.add_option("--finish-by", finish_by,
                     "aim to end within this many seconds: no process starts once less time is left than the longest "
                     "one so far took (the first always starts, unless --expect); the points not started stay "
                     "pending, exit status 5")
          ->check(bla::cli::RealIn(1, 1e9));
  double expect = 0;
  app.add_option("--expect", expect,
                 "with --finish-by: the seconds a process is expected to take, used until a longer one has run, so "
                 "that not even the first process starts when it would not end in time")
      ->check(bla::cli::RealIn(1, 1e9))
      ->needs(finish_by_option);
  app.add_flag_callback(
      "--keys",
      [] {
        std::cout << bla::config::markdown(bla::sweep::sweep_schemas());
        throw CLI::Success();
      },
      "print every key of a sweep file as Markdown, and exit (docs/config.md)");
  app.footer("Exit codes: 0 every point done, 1 some point failed (or another error), 2 sweep file or argument "
             "error, 5 stopped for --finish-by with points left (none failed), 130 interrupted.");
  if (int status = bla::cli::parse_arguments(app, program, argc, argv); status >= 0) return status;

  const std::vector<bla::util::ErrorKind> kinds{
      bla::util::error_kind<bla::config::ConfigError>(bla::util::ExitCode::kUsage)};
  return bla::util::run_guarded(program, kinds, [&] {
    bla::sweep::RunnerOptions options;
    if (!gpus.empty()) {
      options.slots = split_gpus(gpus);
    } else {
      options.slots.assign(static_cast<size_t>(jobs), "");
    }
    const auto spec = bla::sweep::load_sweep(sweep_path);
    auto grid = bla::sweep::expand(spec);
    if (!only.empty()) grid = bla::sweep::only_groups(grid, split_list(only), sweep_path);
    options.out_dir = out.empty() ? default_out_dir(spec) : out;
    options.bla_train = bla_train.empty() ? bla::util::join_path(own_directory(), "bla-train") : bla_train;
    options.ensemble = bla::sweep::parse_ensemble(ensemble);
    options.finish_by = finish_by;
    options.expected_process = expect;
    // With select: the trials, and the held points whose value was chosen (sweep/selection.h).
    std::vector<bla::sweep::Stage> stages;
    if (spec.select) stages = bla::sweep::stages_of(*spec.select, grid, sweep_path);
    auto all_points = grid;
    std::vector<bla::sweep::PointOutcome> known;  // read only where a select needs them (run_points reads its own)
    if (spec.select) {
      known = outcomes_on_disk(spec, all_points, options.out_dir);
      grid = bla::sweep::runnable_points(spec.select, all_points, stages, known);
    }

    if (dry_run) {
      std::cout << all_points.points.size() << " points; base " << spec.base_config << "; out " << options.out_dir
                << "\n";
      if (spec.select) bla::sweep::describe_choices(*spec.select, all_points, stages, known, std::cout);
      std::vector<size_t> queue;
      std::vector<bool> resumable;
      for (size_t i = 0; i < grid.points.size(); ++i) {
        const auto& point = grid.points[i];
        const std::string run_dir = bla::sweep::run_dir_of(options.out_dir, point);
        const std::string status = bla::sweep::existing_outcome(spec, point, run_dir).status;
        const bool resume = bla::sweep::has_checkpoint(run_dir);
        std::cout << point.name << "  [" << (status == "done" || status == "stale" ? status : resume ? "resume" : "new")
                  << "]\n";
        if (status == "done" || status == "stale") continue;
        queue.push_back(i);
        resumable.push_back(resume);
      }
      if (spec.select) {
        const size_t slots = options.slots.size();
        std::cout << "select: bla-sweep runs these in waves of at most " << slots << " process"
                  << (slots > 1 ? "es" : "") << " (one per slot); wave 1 is the first "
                  << (slots > 1 ? std::to_string(slots) + " commands" : std::string("command"))
                  << " below. After each wave it makes the choices again: a point's held seeds (or its next "
                  << "extension trial) run once its choice allows, before the points after it.\n";
      }
      std::cout << "commands:\n";
      for (const auto& process : bla::sweep::plan_processes(grid, queue, resumable, options.ensemble)) {
        std::vector<const bla::sweep::Point*> points;
        std::vector<std::string> run_dirs;
        for (size_t index : process) {
          points.push_back(&grid.points[index]);
          run_dirs.push_back(bla::sweep::run_dir_of(options.out_dir, grid.points[index]));
        }
        const auto args = process.size() > 1 ? bla::sweep::ensemble_arguments(spec, points, run_dirs)
                                             : bla::sweep::train_arguments(spec, *points.front(), run_dirs.front());
        std::cout << "  " << bla::sweep::shell_command(options.bla_train, args) << "\n";
      }
      return 0;
    }
    if (::access(options.bla_train.c_str(), X_OK) != 0) {
      throw bla::util::ArgumentError("cannot run " + options.bla_train +
                                     ": build it (scripts/build.sh bla-train) or pass --bla-train PATH");
    }
    if (spec.select) return run_in_waves(spec, all_points, stages, std::move(known), options);
    const auto result = bla::sweep::run_points(spec, grid, options, std::cout);
    if (result.interrupted) return 130;
    for (const auto& outcome : result.outcomes) {
      if (outcome.status != "done" && !(result.out_of_time && outcome.status == "pending")) return 1;
    }
    return result.out_of_time ? kStoppedForTime : 0;
  });
}
