#include "bla/sweep/point_runner.h"

#include "bla/config/member_keys.h"
#include "bla/util/exit_codes.h"
#include "bla/util/files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <stdexcept>

namespace bla::sweep {

std::string run_dir_of(const std::string& out_dir, const Point& point) {
  return util::join_path(util::join_path(out_dir, "runs"), point.name);
}

std::string log_file_of(const std::string& out_dir, const Point& point) {
  return util::join_path(util::join_path(out_dir, "logs"), point.name + ".log");
}

std::vector<std::string> train_arguments(const SweepSpec& spec, const Point& point, const std::string& run_dir) {
  std::vector<std::string> args = {spec.base_config};
  for (const auto& o : point.overrides) {
    args.push_back("--set");
    args.push_back(o.key + "=" + o.value);
  }
  args.insert(args.end(), {"--out", run_dir, "--resume", "auto"});
  return args;
}

int parse_ensemble(const std::string& value) {
  if (value == "auto") return 16;
  if (value == "off") return 1;
  if (!value.empty() && value.size() < 6 && value.find_first_not_of("0123456789") == std::string::npos && std::stoi(value) >= 1) {
    return std::stoi(value);
  }
  throw util::ArgumentError("--ensemble: '" + value + "' is not auto, off or a number of members >= 1, e.g. --ensemble 8");
}

namespace {

// A point's overrides split into the shared ones and its member keys' final values ("k=v,k=v").
std::pair<std::vector<Override>, std::string> split_member_keys(const Point& point) {
  std::vector<Override> shared;
  std::vector<std::pair<std::string, std::string>> members;
  for (const auto& o : point.overrides) {
    if (!config::is_member_key(o.key)) {
      shared.push_back(o);
      continue;
    }
    auto it = std::find_if(members.begin(), members.end(), [&](const auto& m) { return m.first == o.key; });
    if (it == members.end()) {
      members.emplace_back(o.key, o.value);
    } else {
      it->second = o.value;  // later ones win
    }
  }
  std::string member;
  for (const auto& [key, value] : members) member += (member.empty() ? "" : ",") + key + "=" + value;
  return {shared, member};
}

}  // namespace

std::vector<std::vector<size_t>> plan_processes(const Grid& grid, const std::vector<size_t>& queue,
                                                const std::vector<bool>& resumable, int most) {
  std::vector<std::vector<size_t>> processes;
  std::vector<bool> resumes;  // per process: its points have checkpoints
  std::map<std::string, size_t> open;  // shared settings -> the process still taking members
  for (size_t q = 0; q < queue.size(); ++q) {
    const Point& point = grid.points[queue[q]];
    auto [shared, member] = split_member_keys(point);
    if (most <= 1 || member.empty()) {
      processes.push_back({queue[q]});
      resumes.push_back(resumable[q]);
      continue;
    }
    std::string key = point.group + "\n" + (resumable[q] ? "resume" : "new");
    for (const auto& o : shared) key += "\n" + o.key + "=" + o.value;
    auto it = open.find(key);
    if (it != open.end() && processes[it->second].size() < static_cast<size_t>(most)) {
      processes[it->second].push_back(queue[q]);
    } else {
      open[key] = processes.size();
      processes.push_back({queue[q]});
      resumes.push_back(resumable[q]);
    }
  }
  // Resumed processes first: their progress is only safe until a time limit
  // or a lost machine takes the checkpoints with it.
  std::vector<std::vector<size_t>> ordered;
  for (bool first : {true, false}) {
    for (size_t p = 0; p < processes.size(); ++p) {
      if (resumes[p] == first) ordered.push_back(std::move(processes[p]));
    }
  }
  return ordered;
}

std::vector<std::string> ensemble_arguments(const SweepSpec& spec, const std::vector<const Point*>& points,
                                            const std::vector<std::string>& run_dirs) {
  std::vector<std::string> args = {spec.base_config};
  for (const auto& o : split_member_keys(*points.front()).first) {
    args.push_back("--set");
    args.push_back(o.key + "=" + o.value);
  }
  for (const auto* point : points) {
    args.push_back("--member");
    args.push_back(split_member_keys(*point).second);
  }
  for (const auto& dir : run_dirs) {
    args.push_back("--out");
    args.push_back(dir);
  }
  args.insert(args.end(), {"--resume", "auto", "--regroup"});
  return args;
}

std::string ensemble_log_of(const std::string& out_dir, const Point& first, size_t members) {
  return util::join_path(util::join_path(out_dir, "logs"), first.name + "+" + std::to_string(members - 1) + ".log");
}

std::string point_record(const SweepSpec& spec, const Point& point) {
  nlohmann::json overrides = nlohmann::json::array();
  for (const auto& o : point.overrides) overrides.push_back({o.key, o.value});
  return nlohmann::json{{"base", spec.base_config}, {"overrides", overrides}}.dump() + "\n";
}

PointOutcome existing_outcome(const SweepSpec& spec, const Point& point, const std::string& run_dir) {
  PointOutcome outcome;
  outcome.run_dir = run_dir;
  const std::string record_path = util::join_path(run_dir, "sweep_point.json");
  if (util::path_exists(record_path)) {
    const std::string recorded = util::read_file(record_path);
    if (recorded != point_record(spec, point)) {
      outcome.status = "stale";
      outcome.error = run_dir + " holds a run of other settings (" + record_path + ": " +
                      recorded.substr(0, recorded.find_last_not_of('\n') + 1) +
                      "); the sweep file changed since: delete that folder to rerun the point, or use another --out";
      return outcome;
    }
  }
  const std::string path = util::join_path(run_dir, "summary.json");
  if (!util::path_exists(path)) return outcome;
  try {
    outcome.summary = nlohmann::json::parse(util::read_file(path));
    outcome.status = "done";
    outcome.action = "skipped";
  } catch (const std::exception&) {
    outcome.summary = nullptr;  // unreadable: run it again (it resumes from its last checkpoint)
  }
  return outcome;
}

bool has_checkpoint(const std::string& run_dir) {
  for (const auto& name : util::list_directory(util::join_path(run_dir, "checkpoints"))) {
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".ckpt") == 0) return true;
  }
  return false;
}

std::string status_of_exit(int exit_code) {
  switch (exit_code) {
    case 0: return "done";
    case 2: return "config_error";
    case 3: return "checkpoint_error";
    case 4: return "nonfinite";
    case 5: return "interrupted";  // stopped by a signal after a checkpoint: the next call resumes it
    case 6: return "does_not_fit";
    case 7:
      return "regrouped";  // an ensemble's unfinished members saved their checkpoints to go on as a smaller one
    default: return "failed";
  }
}

std::string shell_command(const std::string& program, const std::vector<std::string>& args) {
  std::string out = program;
  for (const auto& a : args) {
    bool plain = a.find_first_of(" '\"[]{},*?$;&|<>()\\") == std::string::npos && !a.empty();
    out += " " + (plain ? a : "'" + a + "'");
  }
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int sig) { g_stop_signal = sig; }

// No SA_RESTART: a blocked waitpid returns EINTR so the loop sees the signal.
void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

}  // namespace

std::string format_duration(double seconds) {
  long s = static_cast<long>(seconds + 0.5);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof(text), "%ldh%02ldm%02lds", s / 3600, s / 60 % 60, s % 60);
  } else if (s >= 60) {
    std::snprintf(text, sizeof(text), "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(text, sizeof(text), "%lds", s);
  }
  return text;
}

namespace {

off_t file_size(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 ? info.st_size : 0;
}

// The last `count` non-empty lines of `path` after byte `from`, " | "-joined.
std::string tail_of(const std::string& path, off_t from, int count) {
  std::string text;
  try {
    text = util::read_file(path);
  } catch (const std::exception&) {
    return "";
  }
  if (from > 0 && static_cast<size_t>(from) <= text.size()) text = text.substr(static_cast<size_t>(from));
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line.rfind("# bla-sweep: ", 0) != 0) lines.push_back(line);  // not our own header
  }
  std::string out;
  size_t first = lines.size() > static_cast<size_t>(count) ? lines.size() - count : 0;
  for (size_t i = first; i < lines.size(); ++i) out += (out.empty() ? "" : " | ") + lines[i];
  return out;
}

// Starts bla-train with its output appended to `log_path`; the child dies with us.
pid_t launch(const std::string& program, const std::vector<std::string>& args, const std::string& log_path,
             const std::string& cuda_devices) {
  int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + log_path + ": " + std::strerror(errno));
  std::string header = "# bla-sweep: " + shell_command(program, args) +
                       (cuda_devices.empty() ? "" : " (CUDA_VISIBLE_DEVICES=" + cuda_devices + ")") + "\n";
  if (::write(fd, header.data(), header.size()) < 0) {
    ::close(fd);
    throw std::runtime_error("cannot write " + log_path + ": " + std::strerror(errno));
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // A process group of its own: a Ctrl-C in the terminal (or `timeout`)
    // signals bla-sweep's group, and bla-sweep passes the signal on once.
    // Two would make bla-train quit without its checkpoint.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    if (!cuda_devices.empty()) ::setenv("CUDA_VISIBLE_DEVICES", cuda_devices.c_str(), 1);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    std::fprintf(stderr, "bla-sweep: cannot run %s: %s\n", program.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  ::close(fd);
  return pid;
}

struct Running {
  std::vector<size_t> points;  // one, or an ensemble's
  std::string log_path;
  size_t slot;
  off_t log_start;
  Clock::time_point started;
};

// "test accuracy 0.9120 | loss 0.3367 | state 16384 | 108864 parameters"
std::string describe(const nlohmann::json& summary) {
  std::ostringstream out;
  out.precision(4);
  out << std::fixed;
  if (summary.contains("test") && summary["test"].is_object()) {
    const auto& test = summary["test"];
    for (const char* metric : {"accuracy", "tvd", "loss"}) {
      if (test.contains(metric) && test[metric].is_number()) out << metric << " " << test[metric].get<double>() << " | ";
    }
  }
  if (summary.contains("state")) out << "state " << summary["state"].value("total_numel", 0L) << " | ";
  out << summary.value("parameters", 0L) << " parameters";
  return out.str();
}

// The members of an ensemble that have no summary yet (marked pending
// again); members that finished keep their results.
std::vector<size_t> take_unfinished(const SweepSpec& spec, const Grid& grid, const std::vector<size_t>& members,
                                    std::vector<PointOutcome>& outcomes) {
  std::vector<size_t> unfinished;
  for (size_t index : members) {
    PointOutcome found = existing_outcome(spec, grid.points[index], outcomes[index].run_dir);
    if (found.status == "done") {
      outcomes[index].status = "done";
      outcomes[index].exit_code = 0;
      outcomes[index].summary = found.summary;
    } else {
      outcomes[index].status = "pending";
      unfinished.push_back(index);
    }
  }
  return unfinished;
}

// take_unfinished in two halves.
std::pair<std::vector<size_t>, std::vector<size_t>> split_unfinished(const SweepSpec& spec, const Grid& grid,
                                                                     const std::vector<size_t>& members,
                                                                     std::vector<PointOutcome>& outcomes) {
  const std::vector<size_t> unfinished = take_unfinished(spec, grid, members, outcomes);
  const auto middle = unfinished.begin() + static_cast<std::ptrdiff_t>((unfinished.size() + 1) / 2);
  return {std::vector<size_t>(unfinished.begin(), middle), std::vector<size_t>(middle, unfinished.end())};
}

}  // namespace

bool finish_by_reached(const RunnerOptions& options, double longest_process, size_t held, std::ostream& log) {
  const double needed = std::max(longest_process, options.expected_process);
  if (options.finish_by <= 0 || needed <= 0) return false;
  const double left = options.finish_by - std::chrono::duration<double>(Clock::now() - options.started).count();
  if (left >= needed) return false;
  log << "bla-sweep: starting nothing more: " << format_duration(std::max(left, 0.0)) << " left before --finish-by "
      << format_duration(options.finish_by) << ", and "
      << (longest_process >= options.expected_process ? "the longest process so far took "
                                                      : "a process is expected to take (--expect) ")
      << format_duration(needed) << "; " << held << " process" << (held == 1 ? "" : "es")
      << " not started, " << (held == 1 ? "its" : "their") << " points pending (run bla-sweep again to go on)"
      << std::endl;
  return true;
}

SweepResult run_points(const SweepSpec& spec, const Grid& grid, const RunnerOptions& options, std::ostream& log) {
  SweepResult result;
  std::vector<size_t> queue;
  std::vector<bool> resumable;
  // kept: stopped for good in an earlier wave; done_earlier: finished in one.
  size_t skipped = 0, kept = 0, done_earlier = 0, stale = 0, waiting = 0;
  for (size_t i = 0; i < grid.points.size(); ++i) {
    const std::string run_dir = run_dir_of(options.out_dir, grid.points[i]);
    if (auto it = options.settled.find(grid.points[i].name); it != options.settled.end()) {
      result.outcomes.push_back(it->second);
      const std::string& status = it->second.status;
      ++(status == "done" ? done_earlier : status == "stale" ? stale : kept);  // a stale one was told in its wave
      continue;
    }
    result.outcomes.push_back(existing_outcome(spec, grid.points[i], run_dir));
    if (result.outcomes.back().status == "done") {
      ++skipped;
    } else if (result.outcomes.back().status == "stale") {
      ++stale;
      log << "bla-sweep: not running " << grid.points[i].name << ": " << result.outcomes.back().error << std::endl;
    } else if (options.later.count(grid.points[i].name)) {
      ++waiting;  // a row of results.csv, pending until its wave
    } else {
      queue.push_back(i);
      resumable.push_back(has_checkpoint(run_dir));
    }
  }
  auto processes = plan_processes(grid, queue, resumable, options.ensemble);
  const size_t to_resume = static_cast<size_t>(std::count(resumable.begin(), resumable.end(), true));
  const size_t ensembles = static_cast<size_t>(
      std::count_if(processes.begin(), processes.end(), [](const auto& p) { return p.size() > 1; }));
  const std::string csv_path = util::join_path(options.out_dir, "results.csv");
  util::create_directories(util::join_path(options.out_dir, "logs"));
  util::create_directories(util::join_path(options.out_dir, "runs"));
  auto write_csv = [&] { util::write_file_atomically(csv_path, results_csv(grid, result.outcomes)); };
  write_csv();
  if (options.wave > 0) {
    // "wave 3: 1 process (an ensemble), 4 points (0 to resume, 4 new); 6 more wait for later waves"
    auto count = [](size_t n, const std::string& one, const std::string& more) {
      return std::to_string(n) + " " + (n == 1 ? one : more);
    };
    const std::string of_them = processes.size() == 1 ? "an ensemble" : count(ensembles, "ensemble", "ensembles");
    log << "bla-sweep: wave " << options.wave << ": " << count(processes.size(), "process", "processes")
        << (ensembles ? " (" + of_them + ")" : "") << ", " << count(queue.size(), "point", "points") << " ("
        << to_resume << " to resume, " << queue.size() - to_resume << " new)"
        << (waiting ? "; " + std::to_string(waiting) + " more wait for later waves" : "") << std::endl;
  } else {
    log << "bla-sweep: " << grid.points.size() << " points: " << skipped << " done already (skipped), "
        << (done_earlier ? std::to_string(done_earlier) + " done earlier in this sweep, " : "")
        << (kept ? std::to_string(kept) + " stopped earlier in this sweep (not run again), " : "") << to_resume
        << " to resume, " << queue.size() - to_resume << " new"
        << (waiting ? ", " + std::to_string(waiting) + " for later waves" : "")
        << (stale ? ", " + std::to_string(stale) + " stale" : "") << "; " << processes.size() << " processes"
        << (ensembles ? " (" + std::to_string(ensembles) + " ensembles of points that differ only in member keys)" : "")
        << ", " << options.slots.size() << " at a time; " << options.out_dir << std::endl;
  }

  install_stop_handlers();
  const auto sweep_started = Clock::now();
  std::map<pid_t, Running> running;
  std::vector<bool> slot_busy(options.slots.size(), false);
  size_t next = 0, finished = 0, failed = 0;
  bool forwarded = false;
  result.longest_process = options.longest_process;
  // RunnerOptions::finish_by: true (and said once) when the next process should not start.
  auto out_of_time = [&] {
    if (!result.out_of_time) {
      result.out_of_time = finish_by_reached(options, result.longest_process, processes.size() - next, log);
    }
    return result.out_of_time;
  };
  // After a stop signal, or once out of time, nothing new starts: wait for the
  // running points only (waiting with none running would fail with ECHILD).
  while ((g_stop_signal == 0 && next < processes.size() && !out_of_time()) || !running.empty()) {
    while (g_stop_signal == 0 && next < processes.size() && running.size() < options.slots.size() &&
           !out_of_time()) {
      size_t slot = 0;
      while (slot_busy[slot]) ++slot;
      const auto& members = processes[next++];
      std::vector<const Point*> points;
      std::vector<std::string> run_dirs;
      std::string names;
      for (size_t index : members) {
        const Point& point = grid.points[index];
        PointOutcome& outcome = result.outcomes[index];
        outcome.action = has_checkpoint(outcome.run_dir) ? "resumed" : "ran";
        outcome.status = "running";
        util::create_directories(outcome.run_dir);
        util::write_file_atomically(util::join_path(outcome.run_dir, "sweep_point.json"), point_record(spec, point));
        points.push_back(&point);
        run_dirs.push_back(outcome.run_dir);
        names += (names.empty() ? "" : ", ") + point.name;
      }
      const bool ensemble = members.size() > 1;
      const std::string log_path = ensemble ? ensemble_log_of(options.out_dir, *points.front(), members.size())
                                            : log_file_of(options.out_dir, *points.front());
      const off_t log_start = file_size(log_path);
      pid_t pid = launch(options.bla_train,
                         ensemble ? ensemble_arguments(spec, points, run_dirs)
                                  : train_arguments(spec, *points.front(), run_dirs.front()),
                         log_path, options.slots[slot]);
      slot_busy[slot] = true;
      running[pid] = {members, log_path, slot, log_start, Clock::now()};
      const bool resuming = result.outcomes[members.front()].action == "resumed";
      log << "bla-sweep: start " << (ensemble ? "ensemble of " + std::to_string(members.size()) + ": " : "") << names
          << (resuming ? " (resuming)" : "") << (options.slots[slot].empty() ? "" : " on GPU " + options.slots[slot])
          << " | log " << log_path << std::endl;
    }
    int wait_status = 0;
    pid_t pid = ::waitpid(-1, &wait_status, 0);
    if (pid < 0) {
      if (errno == EINTR) {
        if (g_stop_signal != 0 && !forwarded) {
          log << "bla-sweep: stopping (signal " << g_stop_signal << "); waiting for " << running.size()
              << " running process(es)" << std::endl;
          for (const auto& entry : running) ::kill(entry.first, g_stop_signal);
          forwarded = true;
        }
        continue;
      }
      throw std::runtime_error(std::string("waitpid failed: ") + std::strerror(errno));
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const Running run = it->second;
    running.erase(it);
    slot_busy[run.slot] = false;
    const double seconds = std::chrono::duration<double>(Clock::now() - run.started).count();
    result.longest_process = std::max(result.longest_process, seconds);
    if (run.points.size() > 1 && WIFEXITED(wait_status) &&
        WEXITSTATUS(wait_status) == static_cast<int>(util::ExitCode::kOutOfMemory) && g_stop_signal == 0) {
      // Too many members for the memory: the unfinished ones run next as two
      // ensembles of half the size (they resume what they saved).
      auto halves = split_unfinished(spec, grid, run.points, result.outcomes);
      finished += run.points.size() - halves.first.size() - halves.second.size();  // members that had finished
      log << "bla-sweep: an ensemble of " << run.points.size() << " did not fit in memory (exit 6, " << run.log_path
          << "); its " << halves.first.size() + halves.second.size() << " unfinished members run as ensembles of "
          << halves.first.size() << " and " << halves.second.size() << std::endl;
      for (auto* half : {&halves.second, &halves.first}) {
        if (!half->empty()) processes.insert(processes.begin() + static_cast<std::ptrdiff_t>(next), *half);
      }
      write_csv();
      continue;
    }
    if (run.points.size() > 1 && WIFEXITED(wait_status) &&
        WEXITSTATUS(wait_status) == static_cast<int>(util::ExitCode::kRegroup) && g_stop_signal == 0) {
      // Half the members or more finished early: the others, checkpointed at
      // one step, go on next as an ensemble of their own, so the finished
      // ones are no longer computed.
      const auto unfinished = take_unfinished(spec, grid, run.points, result.outcomes);
      for (size_t index : run.points) {
        if (std::find(unfinished.begin(), unfinished.end(), index) != unfinished.end()) continue;
        ++finished;
        log << "bla-sweep: done " << grid.points[index].name << " in " << format_duration(seconds) << " | "
            << describe(result.outcomes[index].summary) << " [" << finished << "/" << queue.size() << "]" << std::endl;
      }
      log << "bla-sweep: " << run.points.size() - unfinished.size() << " of an ensemble's " << run.points.size()
          << " members finished early (" << run.log_path << "); its other " << unfinished.size()
          << " continue as an ensemble of " << unfinished.size() << std::endl;
      if (!unfinished.empty()) processes.insert(processes.begin() + static_cast<std::ptrdiff_t>(next), unfinished);
      write_csv();
      continue;
    }
    for (size_t index : run.points) {
      const Point& point = grid.points[index];
      PointOutcome& outcome = result.outcomes[index];
      ++finished;
      if (WIFEXITED(wait_status)) {
        outcome.exit_code = WEXITSTATUS(wait_status);
        outcome.status = status_of_exit(outcome.exit_code);
      } else {
        outcome.exit_code = -1;
        outcome.status = "killed";
      }
      PointOutcome found = existing_outcome(spec, point, outcome.run_dir);
      if (found.status == "done" && (outcome.status == "done" || run.points.size() > 1)) {
        // An ensemble's other members finish when one fails: a member with its summary is done.
        outcome.status = "done";
        outcome.exit_code = 0;
        outcome.summary = found.summary;
      } else if (outcome.status == "done") {
        outcome.status = "failed";
        outcome.error = "bla-train exited 0 but wrote no readable " + util::join_path(outcome.run_dir, "summary.json");
      }
      if (outcome.status == "done") {
        log << "bla-sweep: done " << point.name << " in " << format_duration(seconds) << " | "
            << describe(outcome.summary) << " [" << finished << "/" << queue.size() << "]" << std::endl;
        continue;
      }
      ++failed;
      // An ensemble member's own lines are in its train.log; the process's in the shared log.
      const std::string member_log = util::join_path(outcome.run_dir, "train.log");
      std::string tail = run.points.size() > 1 && util::path_exists(member_log) ? tail_of(member_log, 0, 2) : "";
      if (tail.empty() || tail.find("error") == std::string::npos) tail = tail_of(run.log_path, run.log_start, options.tail_lines);
      if (outcome.error.empty()) outcome.error = tail;
      std::string how = WIFEXITED(wait_status) ? "exit code " + std::to_string(outcome.exit_code)
                                               : "killed by signal " + std::to_string(WTERMSIG(wait_status));
      log << "bla-sweep: FAILED " << point.name << " (" << outcome.status << ", " << how << ") after "
          << format_duration(seconds) << " [" << finished << "/" << queue.size() << "]: " << outcome.error
          << "\n  full output: " << run.log_path << std::endl;
    }
    write_csv();
  }
  // Points never started keep status pending.
  result.interrupted = g_stop_signal != 0;
  write_csv();
  const double total = std::chrono::duration<double>(Clock::now() - sweep_started).count();
  if (options.wave > 0) {
    log << "bla-sweep: " << (result.interrupted ? "interrupted in wave " : "wave ") << options.wave
        << (result.interrupted ? " after " : " done in ") << format_duration(total) << ": " << finished - failed
        << " ran, " << failed << " failed" << (result.interrupted ? " | " + csv_path : "") << std::endl;
    return result;
  }
  log << "bla-sweep: "
      << (result.interrupted ? "interrupted" : result.out_of_time ? "stopped for --finish-by" : "finished") << " in "
      << format_duration(total)
      << ": " << finished - failed << " ran, " << failed << " failed, " << skipped << " skipped"
      << (stale ? ", " + std::to_string(stale) + " stale (not run)" : "") << " | "
      << csv_path << std::endl;
  return result;
}

}  // namespace bla::sweep
