// bla-sweep SWEEP.yaml [--dry-run] [--jobs N | --gpus LIST] [--ensemble auto|N|off] [--out DIR] [--bla-train PATH]
//
// Runs every point of a sweep file (src/bla/sweep/sweep_file.h) with the
// bla-train beside this program, skips finished points, resumes interrupted
// ones, and writes DIR/results.csv. With a sweep file's select, the trials run
// first, then the other seeds at the value they chose (sweep/selection.h).
// Needs neither LibTorch nor the library.
// Exit codes: 0 every point done, 1 some point failed, 2 sweep file or usage
// error, 130 interrupted.
#include "bla/config/section.h"
#include "bla/sweep/grid.h"
#include "bla/sweep/point_runner.h"
#include "bla/sweep/selection.h"
#include "bla/sweep/sweep_file.h"
#include "bla/util/exit_codes.h"
#include "bla/util/files.h"
#include "cli/arguments.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <iostream>
#include <set>

namespace {

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
  app.add_flag_callback(
      "--keys",
      [] {
        std::cout << bla::config::markdown(bla::sweep::sweep_schemas());
        throw CLI::Success();
      },
      "print every key of a sweep file as Markdown, and exit (docs/config.md)");
  app.footer("Exit codes: 0 every point done, 1 some point failed (or another error), 2 sweep file or argument "
             "error, 130 interrupted.");
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
    auto result = bla::sweep::run_points(spec, grid, options, std::cout);
    if (result.interrupted) return 130;
    // The trials that just ran settle their choices: the extension trials they
    // call for, then the chosen held points, run next, until no point is added.
    while (spec.select) {
      for (size_t i = 0, j = 0; i < all_points.points.size() && j < grid.points.size(); ++i) {
        if (all_points.points[i].name == grid.points[j].name) known[i] = result.outcomes[j++];
      }
      bla::sweep::describe_choices(*spec.select, all_points, stages, known, std::cout);
      auto next = bla::sweep::runnable_points(spec.select, all_points, stages, known);
      std::set<std::string> ran;
      for (const auto& point : grid.points) ran.insert(point.name);
      const bool more = std::any_of(next.points.begin(), next.points.end(),
                                    [&ran](const auto& point) { return !ran.count(point.name); });
      if (!more) break;
      for (size_t i = 0; i < all_points.points.size(); ++i) {
        if (known[i].status != "done" && known[i].status != "pending" && known[i].status != "stale")
          options.settled[all_points.points[i].name] = known[i];
      }
      grid = std::move(next);
      result = bla::sweep::run_points(spec, grid, options, std::cout);
      if (result.interrupted) return 130;
    }
    for (const auto& outcome : result.outcomes) {
      if (outcome.status != "done") return 1;
    }
    return 0;
  });
}
