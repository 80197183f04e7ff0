#include "bla/train/ensemble_trainer.h"

#include "bla/config/members.h"
#include "bla/model/ensemble.h"
#include "bla/tasks/task.h"
#include "bla/train/checkpointer.h"
#include "bla/train/task_and_model.h"
#include "bla/train/data_order.h"
#include "bla/train/early_stop.h"
#include "bla/train/ensemble_step.h"
#include "bla/train/evaluate.h"
#include "bla/train/feeder.h"
#include "bla/train/memory_estimate.h"
#include "bla/train/member_optimizer.h"
#include "bla/train/run_report.h"
#include "bla/train/step_profiler.h"
#include "bla/train/trainer.h"
#include "bla/util/files.h"
#include "bla/util/interrupt.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <map>
#include <memory>
#include <set>

namespace bla::train {

namespace {
using Clock = std::chrono::steady_clock;

// Every key but the member keys and run.name must agree: the members share one batched computation.
void check_same_but_member_keys(const std::vector<config::Config>& configs) {
  auto without_member_keys = [](const config::Config& c) {
    YAML::Node copy = YAML::Clone(c.resolved);
    for (const auto& key : config::member_keys()) {
      const auto dot = key.find('.');
      if (copy[key.substr(0, dot)]) copy[key.substr(0, dot)].remove(key.substr(dot + 1));
    }
    if (copy["run"]) copy["run"].remove("name");
    YAML::Emitter out;
    out << copy;
    return std::string(out.c_str());
  };
  const std::string first = without_member_keys(configs.front());
  for (size_t e = 1; e < configs.size(); ++e) {
    if (without_member_keys(configs[e]) != first) {
      throw config::ConfigError("ensemble member " + std::to_string(e) +
                                " differs from member 0 in a key that is not a member key; members may differ only in " +
                                "run.seed and the optimizer's numbers (config/members.h); run the others separately");
    }
  }
}

struct Member {
  config::Config config;
  std::string run_dir, label;
  std::unique_ptr<tasks::Task> task;
  std::shared_ptr<spdlog::logger> log;
  std::unique_ptr<Checkpointer> checkpointer;
  std::unique_ptr<BatchFeeder> feeder;
  std::unique_ptr<RunRecords> records;
  Progress progress;
  bool active = true;          // still training
  std::string failure;         // why the member's run failed
  nlohmann::json stopped_early;  // the validation result that ended it early
  std::map<std::string, double> last_validation;  // the newest validation results, and their step
  int64_t last_validation_step = -1;
};

}  // namespace

std::vector<std::string> member_run_directories(const config::Config& first, const std::vector<std::string>& labels,
                                                const std::vector<std::string>& outs) {
  std::vector<std::string> dirs;
  if (outs.size() == labels.size()) {
    dirs = outs;
  } else if (outs.size() <= 1) {
    const std::string parent = outs.empty() ? util::join_path(first.run.out_dir, first.run.name) : outs.front();
    for (const auto& label : labels) dirs.push_back(util::join_path(parent, label));
  } else {
    throw config::ConfigError("--out was given " + std::to_string(outs.size()) + " times for an ensemble of " +
                              std::to_string(labels.size()) +
                              " members; give one folder (members go into folders named by their values) or one per member");
  }
  std::set<std::string> seen;
  for (const auto& dir : dirs) {
    if (!seen.insert(dir).second) {
      throw config::ConfigError("two ensemble members would share the run directory " + dir +
                                "; list distinct values (a value twice makes the same run twice)");
    }
  }
  return dirs;
}

std::vector<nlohmann::json> train_ensemble(std::vector<config::Config> configs, const EnsembleOptions& options) {
  const auto started = Clock::now();
  const int64_t E = static_cast<int64_t>(configs.size());
  if (E < 1 || options.run_dirs.size() != configs.size()) throw std::invalid_argument("train_ensemble: one run directory per member");
  if (std::getenv("WORLD_SIZE") != nullptr && std::string(std::getenv("WORLD_SIZE")) != "1") {
    throw config::ConfigError("an ensemble trains in one process; run it without torchrun/bla-launch");
  }
  const config::TrainConfig t = configs.front().train;  // a copy: the configs move into the members below
  if (configs.front().run.threads > 0) torch::set_num_threads(static_cast<int>(configs.front().run.threads));
  const torch::Device device = resolve_device(configs.front().run.device);
  const bool bf16 = device.is_cuda() && t.precision != "fp32";
  if (!device.is_cuda() && t.precision == "bf16") {
    throw config::ConfigError("train.precision is bf16 but the run is on the CPU, which trains in fp32; use auto or fp32");
  }
  if (t.fused_head == "on") {
    throw config::ConfigError("train.fused_head is on, but an ensemble's heads are one batched product; use auto or off");
  }

  // Each member's task and model, made as its solo run makes them (same seed, same order).
  std::vector<Member> members(static_cast<size_t>(E));
  std::vector<model::LanguageModel> solos;
  int64_t vocab = 0;
  for (int64_t e = 0; e < E; ++e) {
    auto& m = members[e];
    m.config = std::move(configs[e]);
    m.run_dir = options.run_dirs[e];
    m.label = e < static_cast<int64_t>(options.labels.size()) ? options.labels[e] : std::to_string(e);
    torch::manual_seed(m.config.run.seed);
    m.task = tasks::make_task(*m.config.data, m.config.run.seed);
    vocab = model_vocabulary(m.config, *m.task);
    if (e == 0) {  // the size that fits, before anything big is allocated
      const auto one = estimate_training_memory(m.config, vocab, m.task->seq_len());
      const double available = memory_limit_bytes(m.config, device);
      if (available > 0 && one.total_bytes() * E > available) {
        const int64_t fit = static_cast<int64_t>(available / std::max(one.total_bytes(), 1.0));
        throw DoesNotFitError("an ensemble of " + std::to_string(E) + " members needs at least " +
                              std::to_string(static_cast<int64_t>(one.total_bytes() * E / (1 << 20))) + " MiB; " +
                              memory_limit_name(m.config, device) + " offers " +
                              std::to_string(static_cast<int64_t>(available / (1 << 20))) + " MiB; " +
                              (fit > 0 ? "at most " + std::to_string(fit) + " members fit: list fewer values"
                                       : std::string("not one member fits: make the model or the batch smaller")));
      }
    }
    solos.push_back(build_model(m.config, vocab, m.task->seq_len()));
  }
  {
    std::vector<config::Config> check;
    for (const auto& m : members) check.push_back(m.config);
    check_same_but_member_keys(check);
  }
  const int64_t seq_len = members.front().task->seq_len();
  model::LanguageModel ensemble(members.front().config.model, vocab, seq_len);
  model::stack_members(*ensemble, solos);
  ensemble->to(device);
  ensemble->train();
  model::LanguageModel scratch = solos.front();  // a member's weights pass through it for evaluation and checkpoints
  solos.erase(solos.begin() + 1, solos.end());  // the stack holds the members now
  scratch->to(device);
  Optimizer scratch_optimizer(*scratch, members.front().config.train, /*fused=*/false);

  auto console = std::make_shared<spdlog::logger>("bla-train-ensemble");
  if (!options.quiet) console->sinks().push_back(std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
  console->set_pattern("[%H:%M:%S] %v");

  // Run directories, loggers, checkpoints.
  for (int64_t e = 0; e < E; ++e) {
    auto& m = members[e];
    std::string set_aside;
    if (options.resume.empty()) set_aside = Checkpointer::claim_for_fresh_start(m.run_dir, options.overwrite);
    util::create_directories(m.run_dir);
    util::write_file_atomically(util::join_path(m.run_dir, "config.yaml"), m.config.resolved_yaml());
    m.log = make_run_logger(m.run_dir, /*quiet=*/true, "member-" + std::to_string(e));
    if (!set_aside.empty()) m.log->warn("--overwrite: the earlier run's files are now in {}", set_aside);
    m.checkpointer = std::make_unique<Checkpointer>(m.run_dir, m.config, *m.task, vocab, *m.log);
    for (const auto& name : m.checkpointer->remove_stale_temporaries()) {
      m.log->info("removed {}, left by a save that did not finish", name);
    }
  }

  const int64_t train_examples = members.front().task->num_examples(tasks::Split::kTrain);
  const int64_t total_steps =
      t.steps > 0 ? t.steps : static_cast<int64_t>(std::ceil(t.epochs * train_examples / t.batch_size));
  MemberOptimizer optimizer(*ensemble,
                            [&] {
                              std::vector<config::TrainConfig> train;
                              for (const auto& m : members) train.push_back(m.config.train);
                              return train;
                            }(),
                            /*fused=*/t.fused_optimizer != "off");

  // Resume: every member from the same step, or none. With --resume auto that is the newest step every member
  // has a checkpoint of (a process killed while it saved may have written some members' newest only).
  int64_t step = 0;
  {
    std::vector<std::string> paths;
    for (auto& m : members) paths.push_back(m.checkpointer->to_resume(options.resume));
    const auto resumed = std::count_if(paths.begin(), paths.end(), [](const std::string& p) { return !p.empty(); });
    if (resumed > 0 && resumed < E) {
      throw config::ConfigError("--resume: " + std::to_string(resumed) + " of " + std::to_string(E) +
                                " members have a checkpoint to resume from; an ensemble resumes all members or none "
                                "(run the others as a new ensemble)");
    }
    if (resumed > 0 && options.resume == "auto") {
      int64_t common = std::numeric_limits<int64_t>::max();
      for (const auto& path : paths) common = std::min(common, Checkpointer::step_of(path));
      for (int64_t e = 0; e < E; ++e) {
        if (Checkpointer::step_of(paths[e]) > common) paths[e] = members[e].checkpointer->to_resume("auto", common);
        if (paths[e].empty()) {
          throw config::ConfigError("--resume auto: member " + members[e].label + " has no checkpoint of step " +
                                    std::to_string(common) + " or earlier, which another member resumes from; " +
                                    "resume the members separately");
        }
      }
    }
    for (int64_t e = 0; e < E && resumed > 0; ++e) {
      auto& m = members[e];
      m.progress = m.checkpointer->load(paths[e], *scratch, scratch_optimizer);
      model::copy_member_in(*ensemble, e, *scratch);
      optimizer.import_member(e, scratch_optimizer);
      if (e > 0 && m.progress.step != members.front().progress.step) {
        throw config::ConfigError("--resume: member " + m.label + " is at step " + std::to_string(m.progress.step) +
                                  " and member " + members.front().label + " at step " +
                                  std::to_string(members.front().progress.step) +
                                  "; an ensemble resumes from one step (resume them separately)");
      }
      if (auto aside = m.checkpointer->set_aside_later_than(m.progress.step); !aside.empty()) {
        m.log->warn("resumed from step {}: the later checkpoints of the abandoned line are now in {}", m.progress.step, aside);
      }
    }
    step = members.front().progress.step;
  }

  const int64_t micro_batch = t.batch_size / t.grad_accum;
  const std::string graph_obstacle = StepGraph::obstacle(device, optimizer.fused(), false);
  if (t.cuda_graph == "on" && !graph_obstacle.empty()) {
    throw config::ConfigError("train.cuda_graph is on but " + graph_obstacle + "; use auto or off");
  }
  FeederOptions feed;
  feed.micro_batch = micro_batch;
  feed.grad_accum = t.grad_accum;
  // Every member's scored rows padded to one count: the batched head needs it, and so does a captured step.
  feed.pad_rows_to = micro_batch * members.front().task->max_scored_per_example();
  // A captured step also needs every step's inputs as long: the task's longest row (RegBench's vary).
  feed.pad_length_to = t.cuda_graph != "off" && graph_obstacle.empty() ? members.front().task->seq_len() : 0;
  feed.ahead = t.prefetch;
  feed.threads = device.is_cuda() ? 2 : 1;  // each member's feeder: two threads where the task allows
  StepMetrics step_metrics(device, E);
  step_metrics.set_step(step);
  for (int64_t e = 0; e < E; ++e) {
    auto& m = members[e];
    m.progress.total_steps = total_steps;
    if (m.progress.run_id.empty()) m.progress.run_id = new_run_id();
    auto identity = run_identity(m.config, m.progress.run_id);
    identity["started"] = std::time(nullptr);
    identity["ensemble"] = {{"members", E}, {"member", e}, {"label", m.label}};
    util::write_file_atomically(util::join_path(m.run_dir, "run.json"), identity.dump(2) + "\n");
    DataOrder order(train_examples, m.config.run.seed);
    order.set_position(m.progress.data_position);
    m.feeder = std::make_unique<BatchFeeder>(*m.task, order, [](const std::vector<int64_t>& g) { return g; }, feed);
    m.records = std::make_unique<RunRecords>(m.run_dir, m.progress.step, t.tensorboard);
    step_metrics.restore_window(m.progress.window_loss, m.progress.window_correct, m.progress.window_count,
                                m.progress.window_steps, e);
  }
  EnsembleStepOptions step_options;
  step_options.bf16 = bf16;
  step_options.halt_on_nonfinite = t.on_nonfinite == "stop";
  for (const auto& m : members) step_options.grad_clips.push_back(m.config.train.grad_clip);
  step_options.graph = StepGraphOptions{t.cuda_graph, 3, feed.pad_rows_to};
  EnsembleStepRunner runner(*ensemble, optimizer, step_metrics, device, step_options, [&](const std::string& line) {
    console->info("{}", line);
    for (auto& m : members) m.log->info("{}", line);
  });

  const auto& first = members.front();
  auto both = [&](const std::string& line) {  // a line for the console and every member's train.log
    console->info("{}", line);
    for (auto& m : members) m.log->info("{}", line);
  };
  both("ensemble of " + std::to_string(E) + " members on " + device.str() + " | task " + first.task->name() + " (seq " +
       std::to_string(seq_len) + ", vocab " + std::to_string(vocab) + ") | " +
       std::to_string(scratch->num_parameters()) + " parameters each");
  for (int64_t layer = 0; layer < scratch->num_layers(); ++layer) {
    both("  layer " + std::to_string(layer) + ": " + scratch->mixer(layer).describe());
  }
  for (const auto& m : members) {
    console->info("  member {}: {} -> {}", m.label, m.config.train.lr, m.run_dir);
    m.log->info("this run is member {} ({}) of the ensemble; lr {}, seed {}", m.label, &m - &members.front(),
                m.config.train.lr, m.config.run.seed);
  }
  both(std::to_string(total_steps) + " steps of " + std::to_string(t.batch_size) + " examples per member | step: " +
       runner.mode());

  EvalOptions eval_options{t.eval_examples, t.eval_batch_size > 0 ? t.eval_batch_size : t.batch_size, bf16};
  check_validation_settings(t, *members.front().task);
  const EarlyStop early_stop(t);
  auto evaluate_member = [&](int64_t e, tasks::Split split) {
    auto& m = members[e];
    model::copy_member_out(*ensemble, e, *scratch);
    EvalOptions o = eval_options;
    if (split == tasks::Split::kValidation) o.max_examples = 0;  // the whole validation split
    auto result = evaluate(*scratch, *m.task, split, device, o);
    const std::string name = split == tasks::Split::kTest ? "test" : "validation";
    nlohmann::json record = {{"step", step}, {"split", name}};
    for (const auto& [key, value] : result) record[key] = value;
    m.records->write(name, step, record);
    m.log->info("{} step {}{}", split == tasks::Split::kTest ? "eval" : name, step, metrics_text(result));
    return result;
  };
  // A member's checkpoint of this step (its weights pass through scratch); false when they are not finite.
  auto checkpoint_member = [&](int64_t e, const StepTotals& window) {
    auto& m = members[e];
    model::copy_member_out(*ensemble, e, *scratch);
    optimizer.export_member(e, scratch_optimizer);
    m.progress.window_loss = window.loss;
    m.progress.window_correct = window.correct;
    m.progress.window_count = window.count;
    m.progress.window_steps = window.steps;
    try {
      Checkpointer::check_finite(step, *scratch);
    } catch (const NonFiniteError& error) {
      return std::string(error.what());
    }
    m.log->info("checkpoint {}", m.checkpointer->save(m.progress, *scratch, scratch_optimizer));
    return std::string();
  };
  // The end of a member's run: the test evaluation and summary.json.
  std::vector<nlohmann::json> summaries(static_cast<size_t>(E));
  auto finish_member = [&](int64_t e) {
    auto& m = members[e];
    const double wall = std::chrono::duration<double>(Clock::now() - started).count();
    // The validation results of the final weights (where the task has a validation split: what selection reads).
    if (m.task->num_examples(tasks::Split::kValidation) > 0 && m.last_validation_step != step) {
      m.last_validation = evaluate_member(e, tasks::Split::kValidation);
    }
    auto test = evaluate_member(e, tasks::Split::kTest);  // leaves the member's weights in scratch
    nlohmann::json summary;
    summary["run_dir"] = m.run_dir;
    summary["task"] = m.task->name();
    summary["steps"] = step;
    if (!m.stopped_early.is_null()) summary["early_stop"] = m.stopped_early;
    summary["test"] = test;
    if (!m.last_validation.empty()) summary["validation"] = m.last_validation;
    summary["parameters"] = scratch->num_parameters();
    summary["state"] = state_summary(*scratch, seq_len);
    summary["wall_time_s"] = wall;
    summary["device"] = device.str();
    summary["step"] = runner.mode();
    summary["ensemble"] = {{"members", E}, {"member", e}, {"label", m.label}};
    if (device.is_cuda()) summary["peak_memory_bytes"] = peak_memory_bytes(device);
    util::write_file_atomically(util::join_path(m.run_dir, "summary.json"), summary.dump(2) + "\n");
    char line[256];
    std::snprintf(line, sizeof(line), "done: test %s %.4f | test loss %.4f | %s", m.task->headline_metric().c_str(),
                  test.at(m.task->headline_metric()), test.at("loss"), format_duration(wall).c_str());
    m.log->info("{}", line);
    console->info("member {}: {}", m.label, line);
    summaries[e] = summary;
    m.active = false;
  };
  auto fail_member = [&](int64_t e, const std::string& what) {
    auto& m = members[e];
    m.log->error("{}; stopping without writing a checkpoint (lower train.lr)", what);
    console->error("member {}: {}; it stops, the others go on", m.label, what);
    m.active = false;
    m.failure = what;
    runner.stop_member(e);
  };

  if (options.handle_signals) util::install_interrupt_handlers();
  const double tokens_per_step = static_cast<double>(t.batch_size * seq_len);
  const auto loop_started = Clock::now();
  auto last_log = loop_started;
  const int64_t first_step = step;
  const char* sync_env = std::getenv("BLA_SYNC_EVERY_STEP");
  const bool read_every_step = !device.is_cuda() || (sync_env != nullptr && std::string(sync_env) == "1");
  std::vector<StepBatch> batches(static_cast<size_t>(E));
  // The ensemble's step is profiled into the first member's run directory.
  StepProfiler profiler({t.profile_start, t.profile_steps}, members.front().run_dir, device, both);
  while (step < total_steps && std::any_of(members.begin(), members.end(), [](const Member& m) { return m.active; })) {
    const auto lrs = optimizer.learning_rates(step, total_steps);
    for (int64_t e = 0; e < E; ++e) batches[e] = members[e].feeder->next();
    profiler.before_step(step);
    runner.run(join_member_batches(batches, device.is_cuda()), lrs);
    step += 1;
    profiler.after_step(step);
    for (int64_t e = 0; e < E; ++e) {
      members[e].progress.step = step;
      members[e].progress.data_position = batches[e].data_position;
    }
    const int signal = options.handle_signals && step < total_steps ? util::interrupt_signal() : 0;
    std::vector<int64_t> stopping;  // members whose validation metric reached its target at this step
    if (t.validation_every > 0 && step % t.validation_every == 0) {
      for (int64_t e = 0; e < E; ++e) {
        if (!members[e].active) continue;
        const auto validation = evaluate_member(e, tasks::Split::kValidation);
        members[e].last_validation = validation;
        members[e].last_validation_step = step;
        if (early_stop.enabled() && early_stop.reached(validation) && step < total_steps) {
          members[e].log->info("early stop: {}", early_stop.describe(step, validation));
          console->info("member {}: early stop: {}", members[e].label, early_stop.describe(step, validation));
          members[e].stopped_early = early_stop.record(step, validation);
          stopping.push_back(e);
        }
      }
    }
    const bool log_step = step % t.log_every == 0 || step == total_steps;
    // A member that stops logs its last step as its solo run would; the others keep their log windows.
    const auto logs = [&](int64_t e) {
      return log_step || std::find(stopping.begin(), stopping.end(), e) != stopping.end();
    };
    // Regroup (EnsembleOptions::regroup): once this step's early stops make at
    // least half the members finished, with none failed and some still training.
    int64_t finished_members = static_cast<int64_t>(stopping.size()), failed_members = 0;
    for (const auto& m : members) {
      if (!m.active) (m.failure.empty() ? finished_members : failed_members) += 1;
    }
    const bool regroup = options.regroup && !stopping.empty() && failed_members == 0 && 2 * finished_members >= E &&
                         finished_members < E && step < total_steps;
    const bool checkpoint_step =
        (t.checkpoint_every > 0 && step % t.checkpoint_every == 0) || step == total_steps || signal != 0 || regroup;
    if (!log_step && !checkpoint_step && !read_every_step && stopping.empty()) continue;

    auto totals = step_metrics.read_members();  // one copy for every member
    for (int64_t e = 0; e < E; ++e) {
      if (!members[e].active) continue;
      const auto& tt = totals[e];
      if (t.on_nonfinite == "stop" && tt.first_bad_step >= 0) {
        fail_member(e, nonfinite_message(tt));
      } else if (t.on_nonfinite == "skip" && tt.longest_skip_run >= t.max_consecutive_skips) {
        fail_member(e, nonfinite_message(tt) + "; " + std::to_string(tt.longest_skip_run) +
                           " updates in a row were skipped (train.max_consecutive_skips: " +
                           std::to_string(t.max_consecutive_skips) + ")");
      }
    }
    if (log_step || !stopping.empty()) {
      const auto now = Clock::now();
      const double elapsed = std::chrono::duration<double>(now - loop_started).count();
      const double since_log = std::chrono::duration<double>(now - last_log).count();
      last_log = now;
      const double rate = (step - first_step) * tokens_per_step / std::max(elapsed, 1e-9);  // per member
      std::vector<double> losses;
      for (int64_t e = 0; e < E; ++e) {
        auto& m = members[e];
        if (!m.active || !logs(e)) continue;
        const auto& tt = totals[e];
        const double loss = tt.steps > 0 ? tt.loss / tt.steps : NAN;
        const double accuracy = tt.count > 0 ? tt.correct / tt.count : NAN;
        losses.push_back(loss);
        nlohmann::json record = {{"step", step},          {"split", "train"}, {"loss", loss},
                                 {"accuracy", accuracy},  {"lr", lrs[e]},      {"grad_norm", tt.grad_norm},
                                 {"tokens", step * tokens_per_step}, {"tokens_per_s", rate}, {"elapsed_s", elapsed},
                                 {"log_interval_s", since_log}};
        if (tt.skipped > 0) record["skipped_steps"] = tt.skipped;
        m.records->write("train", step, record);
        char line[256];
        std::snprintf(line, sizeof(line), "step %lld/%lld | loss %.4f | acc %5.1f%% | lr %.2e | %s tok/s (member)",
                      static_cast<long long>(step), static_cast<long long>(total_steps), loss, 100 * accuracy, lrs[e],
                      format_count(rate).c_str());
        m.log->info("{}", line);
      }
      if (log_step && !losses.empty()) {
        std::sort(losses.begin(), losses.end());
        char line[256];
        std::snprintf(line, sizeof(line), "step %lld/%lld | loss %.4f .. %.4f over %zu members | %s tok/s in all | ETA %s",
                      static_cast<long long>(step), static_cast<long long>(total_steps), losses.front(), losses.back(),
                      losses.size(), format_count(rate * E).c_str(),
                      format_duration((total_steps - step) * tokens_per_step / std::max(rate, 1e-9)).c_str());
        console->info("{}", line);
      }
      if (log_step) {
        step_metrics.reset_window();
        for (auto& tt : totals) {
          tt.loss = tt.correct = tt.count = 0;
          tt.steps = 0;
        }
      }
    }
    if (t.eval_every > 0 && step % t.eval_every == 0 && step < total_steps) {
      for (int64_t e = 0; e < E; ++e) {
        if (members[e].active) evaluate_member(e, tasks::Split::kTest);
      }
    }
    if (checkpoint_step) {
      for (int64_t e = 0; e < E; ++e) {
        if (!members[e].active) continue;
        if (auto bad = checkpoint_member(e, totals[e]); !bad.empty()) fail_member(e, bad);
      }
    }
    for (int64_t e : stopping) {  // an early-stopped member ends here, as at the end of its budget
      if (!members[e].active) continue;
      if (!checkpoint_step) {
        if (auto bad = checkpoint_member(e, totals[e]); !bad.empty()) {
          fail_member(e, bad);
          continue;
        }
      }
      runner.stop_member(e);
      finish_member(e);
    }
    if (signal != 0) {
      const std::string what = std::string(util::signal_name(signal)) + " at step " + std::to_string(step) +
                               ": every member's checkpoint saved; continue with --resume auto";
      both(what);
      throw InterruptedError(what);
    }
    if (regroup) {
      int64_t training = 0;
      for (const auto& m : members) training += m.active ? 1 : 0;
      if (training > 0 &&
          std::all_of(members.begin(), members.end(), [](const Member& m) { return m.failure.empty(); })) {
        const std::string what = std::to_string(E - training) + " of " + std::to_string(E) +
                                 " members finished early by step " + std::to_string(step) + "; the other " +
                                 std::to_string(training) +
                                 " saved their checkpoints: continue them as an ensemble of their own (--resume auto)";
        both(what);
        throw RegroupError(what);
      }
    }
  }
  profiler.finish();

  std::string failures;
  for (int64_t e = 0; e < E; ++e) {
    auto& m = members[e];
    if (!m.failure.empty()) {
      failures += (failures.empty() ? "" : "; ") + ("member " + m.label + ": " + m.failure);
    } else if (m.active) {
      finish_member(e);
    }
  }
  std::vector<nlohmann::json> finished;
  for (auto& summary : summaries) {
    if (!summary.is_null()) finished.push_back(summary);
  }
  if (!failures.empty()) throw NonFiniteError(failures + "; the other members finished");
  return finished;
}

}  // namespace bla::train
