#include "bla/train/trainer.h"

#include "bla/compat.h"
#include "bla/dist/data_parallel.h"
#include "bla/model/lm.h"
#include "bla/tasks/task.h"
#include "bla/train/checkpointer.h"
#include "bla/train/task_and_model.h"
#include "bla/train/data_order.h"
#include "bla/train/early_stop.h"
#include "bla/train/evaluate.h"
#include "bla/train/feeder.h"
#include "bla/train/memory_estimate.h"
#include "bla/train/metrics.h"
#include "bla/train/optimizer.h"
#include "bla/train/run_report.h"
#include "bla/train/step_metrics.h"
#include "bla/train/step_profiler.h"
#include "bla/train/step_runner.h"
#include "bla/util/files.h"
#include "bla/util/interrupt.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <csignal>
#include <map>
#include <optional>

namespace bla::train {

std::string run_directory(const config::Config& config, const RunOptions& options) {
  if (!options.run_dir.empty()) return options.run_dir;
  return util::join_path(config.run.out_dir, config.run.name);
}

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

nlohmann::json train(config::Config config, const RunOptions& options) {
  const auto started = Clock::now();
  const auto& t = config.train;
  if (config.run.threads > 0) torch::set_num_threads(static_cast<int>(config.run.threads));
  torch::manual_seed(config.run.seed);
  dist::DataParallel dp(config, resolve_device(config.run.device));  // dist: one process unless RANK/WORLD_SIZE are set
  const torch::Device device = dp.device();
  const bool bf16 = device.is_cuda() && t.precision != "fp32";
  if (!device.is_cuda() && t.precision == "bf16") {
    throw config::ConfigError("train.precision is bf16 but the run is on the CPU, which trains in fp32; use auto or fp32");
  }

  // Task and model; then every key of the config has been read.
  auto task = tasks::make_task(*config.data, config.run.seed);
  const int64_t vocab = model_vocabulary(config, *task);
  // Sizes that cannot fit are refused before anything is allocated.
  check_memory_fits(estimate_training_memory(config, vocab, task->seq_len()), memory_limit_bytes(config, device),
                    memory_limit_name(config, device));
  model::LanguageModel model = build_model(config, vocab, task->seq_len());
  model->to(device);
  model->train();

  const std::string run_dir = run_directory(config, options);
  // A run directory belongs to one run (checked before anything in it is written; dist: rank 0 moves files).
  std::string set_aside;
  if (options.resume.empty() && (dp.is_main() || !options.overwrite)) {
    set_aside = Checkpointer::claim_for_fresh_start(run_dir, options.overwrite && dp.is_main());
  }
  if (dp.is_main()) {  // dist: rank 0 alone writes files
    util::create_directories(run_dir);
    util::write_file_atomically(util::join_path(run_dir, "config.yaml"), config.resolved_yaml());
  }
  auto log = make_run_logger(dp.is_main() ? run_dir : "", options.quiet);
  if (!set_aside.empty()) log->warn("--overwrite: the earlier run's files are now in {}", set_aside);

  // The parts: optimizer and schedule, checkpoints, data, device-side step metrics, the step itself.
  Optimizer optimizer(*model, t, /*fused=*/t.fused_optimizer != "off");
  Checkpointer checkpointer(run_dir, config, *task, vocab, *log);
  if (dp.is_main()) {
    for (const auto& name : checkpointer.remove_stale_temporaries()) {
      log->info("removed {}, left by a save that did not finish", name);
    }
  }
  const int64_t train_examples = task->num_examples(tasks::Split::kTrain);
  Progress progress;
  progress.total_steps =
      t.steps > 0 ? t.steps : static_cast<int64_t>(std::ceil(t.epochs * train_examples / t.batch_size));
  if (auto path = checkpointer.to_resume(options.resume); !path.empty()) {
    const int64_t total = progress.total_steps;
    progress = checkpointer.load(path, *model, optimizer);
    progress.total_steps = total;
    if (dp.is_main()) {
      if (auto aside = checkpointer.set_aside_later_than(progress.step); !aside.empty()) {
        log->warn("resumed from step {}: the later checkpoints of the abandoned line are now in {}", progress.step, aside);
      }
    }
  }
  if (progress.run_id.empty()) progress.run_id = new_run_id();  // a fresh run (or a checkpoint older than run ids)
  if (dp.is_main()) {
    auto identity = run_identity(config, progress.run_id);
    identity["started"] = std::time(nullptr);
    util::write_file_atomically(util::join_path(run_dir, "run.json"), identity.dump(2) + "\n");
  }
  dp.check_same(progress.step, "the step to start from");  // dist: every rank resumed from the same checkpoint
  dp.broadcast(model->parameters());                        // dist: rank 0's parameters everywhere

  const int64_t micro_batch = t.batch_size / t.grad_accum;
  const std::string graph_obstacle = StepRunner::graph_obstacle(device, optimizer.fused(), dp.active());
  const bool may_capture = t.cuda_graph != "off" && graph_obstacle.empty();
  if (t.cuda_graph == "on" && !graph_obstacle.empty()) {
    throw config::ConfigError("train.cuda_graph is on but " + graph_obstacle + "; use auto or off");
  }
  FeederOptions feed;
  feed.micro_batch = micro_batch;
  feed.grad_accum = t.grad_accum;
  // A captured step needs fixed shapes: every micro-batch's scored rows padded to the task's bound.
  feed.pad_rows_to = may_capture ? dp.shard(std::vector<int64_t>(micro_batch)).size() * task->max_scored_per_example() : 0;
  feed.pad_length_to = may_capture ? task->seq_len() : 0;  // and its inputs to the task's longest row (RegBench)
  feed.pin_memory = device.is_cuda();
  feed.ahead = t.prefetch;
  // On CUDA a small model's step can outrun one thread's batches (an MQAR
  // batch of 256 x 256 tokens takes about 2 ms to generate): two build side
  // by side (at most train.prefetch steps are in the making at once).
  feed.threads = device.is_cuda() ? 2 : 1;
  DataOrder order(train_examples, config.run.seed);
  order.set_position(progress.data_position);
  BatchFeeder feeder(*task, order, [&dp](const std::vector<int64_t>& g) { return dp.shard(g); }, feed);

  StepMetrics step_metrics(device);
  step_metrics.set_step(progress.step);
  step_metrics.restore_window(progress.window_loss, progress.window_correct, progress.window_count,
                              progress.window_steps);
  StepOptions step_options;
  step_options.bf16 = bf16;
  step_options.grad_clip = t.grad_clip;
  step_options.halt_on_nonfinite = t.on_nonfinite == "stop";
  step_options.fused_head = t.fused_head;
  step_options.cuda_graph = t.cuda_graph;
  step_options.graph_rows = feed.pad_rows_to;
  StepRunner runner(*model, optimizer, step_metrics, dp, device, step_options,
                    [&log](const std::string& line) { log->info("{}", line); });

  StepProfiler profiler({t.profile_start, t.profile_steps}, dp.is_main() ? run_dir : "", device,
                        [&log](const std::string& line) { log->info("{}", line); });

  std::optional<RunRecords> records;
  if (dp.is_main()) records.emplace(run_dir, progress.step, t.tensorboard);
  auto report = [&](const std::string& split, const nlohmann::json& record) {
    if (records) records->write(split, progress.step, record);
  };

  log->info("run {} on {} | task {} (seq {}, vocab {}) | {} parameters", run_dir, device.str(), task->name(),
            task->seq_len(), vocab, model->num_parameters());
  for (int64_t layer = 0; layer < model->num_layers(); ++layer) {
    log->info("  layer {}: {} | state {} numbers", layer, model->mixer(layer).describe(),
              model->state_numel(layer, task->seq_len()));
  }
  log->info("{} steps of {} examples ({} tokens), lr {} {}, warmup {}", progress.total_steps, t.batch_size,
            t.batch_size * task->seq_len(), t.lr, t.schedule, t.warmup_steps);
  if (device.is_cuda()) {
    log->info("step: optimizer {}, LM head {}, {}", optimizer.fused() ? "fused AdamW" : "torch::optim::AdamW",
              "fused with the loss: " + step_options.fused_head, runner.mode());
  }

  EvalOptions eval_options{t.eval_examples, t.eval_batch_size > 0 ? t.eval_batch_size : t.batch_size, bf16};
  auto run_eval = [&](int64_t examples, tasks::Split split = tasks::Split::kTest) {
    EvalOptions o = eval_options;
    o.max_examples = examples;
    auto result = evaluate(*model, *task, split, device, o);
    const std::string name = split == tasks::Split::kTest ? "test" : "validation";
    nlohmann::json record = {{"step", progress.step}, {"split", name}};
    for (const auto& [key, value] : result) record[key] = value;
    report(name, record);
    log->info("{} step {}{}", split == tasks::Split::kTest ? "eval" : name, progress.step, metrics_text(result));
    return result;
  };
  check_validation_settings(t, *task);
  const EarlyStop early_stop(t);
  nlohmann::json stopped_early;
  std::map<std::string, double> last_validation;  // the newest validation results, and their step
  int64_t last_validation_step = -1;

  // A bad step (train.on_nonfinite: stop) ends the run at the next check:
  // every step on the CPU (free there), at log and checkpoint steps on CUDA.
  auto stop_if_bad = [&](const StepTotals& totals) {
    if (t.on_nonfinite != "stop" || totals.first_bad_step < 0) return;
    const std::string what = nonfinite_message(totals);
    log->error("{}; stopping without writing a checkpoint (lower train.lr, or set train.on_nonfinite: skip)", what);
    throw NonFiniteError(what + "; the run stopped, the last checkpoint is untouched");
  };

  if (options.handle_signals) util::install_interrupt_handlers();
  // dist: every rank stops after the same step, so an interruption is agreed on by a sum (a host sync;
  // one process reads its own flag).
  auto interrupted = [&]() -> int {
    const int signal = util::interrupt_signal();
    if (!dp.active()) return signal;
    return dp.sum({static_cast<double>(signal)})[0] > 0 ? (signal != 0 ? signal : SIGTERM) : 0;
  };

  dp.attach(model->parameters());  // dist: gradient averaging hooks
  if (dp.active()) log->info("{}", dp.describe());
  const double tokens_per_step = static_cast<double>(t.batch_size * task->seq_len());
  auto last_log = Clock::now();
  const int64_t first_step = progress.step;
  const auto loop_started = Clock::now();
  int64_t skipped_reported = 0;
  // Benchmarks only (scripts/bench_train.py): read the step's numbers after every step, as the step once did.
  const char* sync_env = std::getenv("BLA_SYNC_EVERY_STEP");
  const bool read_every_step = !device.is_cuda() || (sync_env != nullptr && std::string(sync_env) == "1");
  while (progress.step < progress.total_steps) {
    const double lr = optimizer.learning_rate(progress.step, progress.total_steps);
    auto batch = feeder.next();
    profiler.before_step(progress.step);
    runner.run(batch, lr);
    progress.step += 1;
    profiler.after_step(progress.step);
    progress.data_position = batch.data_position;

    const int signal = options.handle_signals && progress.step < progress.total_steps ? interrupted() : 0;
    bool stop_now = false;  // early stopping: the validation metric reached its target
    if (t.validation_every > 0 && progress.step % t.validation_every == 0) {
      const auto validation = run_eval(0, tasks::Split::kValidation);
      last_validation = validation;
      last_validation_step = progress.step;
      if (early_stop.enabled() && early_stop.reached(validation) && progress.step < progress.total_steps) {
        log->info("early stop: {}", early_stop.describe(progress.step, validation));
        stopped_early = early_stop.record(progress.step, validation);
        stop_now = true;
      }
    }
    const bool log_step = progress.step % t.log_every == 0 || progress.step == progress.total_steps || stop_now;
    const bool checkpoint_step = (t.checkpoint_every > 0 && progress.step % t.checkpoint_every == 0) ||
                                 progress.step == progress.total_steps || signal != 0 || stop_now;
    if (!log_step && !checkpoint_step && !read_every_step) continue;  // the step's numbers stay on the device

    auto totals = step_metrics.read();  // the host waits for the device here, and only here
    stop_if_bad(totals);
    if (t.on_nonfinite == "skip" && totals.longest_skip_run >= t.max_consecutive_skips) {
      const std::string what = nonfinite_message(totals) + "; " + std::to_string(totals.longest_skip_run) +
                               " updates in a row were skipped (train.max_consecutive_skips: " +
                               std::to_string(t.max_consecutive_skips) + ")";
      log->error("{}; stopping without writing a checkpoint (lower train.lr)", what);
      throw NonFiniteError(what + "; the run stopped, the last checkpoint is untouched");
    }
    if (totals.skipped > skipped_reported) {
      log->warn("{}; {} step(s) skipped so far", nonfinite_message(totals), totals.skipped);
      skipped_reported = totals.skipped;
    }
    if (log_step) {
      {  // dist: the logged numbers cover the global batch
        const auto sums = dp.sum({totals.loss, totals.correct, totals.count});
        totals.loss = sums[0] / dp.world_size();
        totals.correct = sums[1];
        totals.count = sums[2];
      }
      const auto now = Clock::now();
      const double elapsed = std::chrono::duration<double>(now - loop_started).count();
      const double since_log = std::chrono::duration<double>(now - last_log).count();
      last_log = now;
      const double rate = (progress.step - first_step) * tokens_per_step / std::max(elapsed, 1e-9);
      const double eta = (progress.total_steps - progress.step) * tokens_per_step / std::max(rate, 1e-9);
      const double loss = totals.steps > 0 ? totals.loss / totals.steps : NAN;
      const double accuracy = totals.count > 0 ? totals.correct / totals.count : NAN;
      nlohmann::json record = {{"step", progress.step}, {"split", "train"}, {"loss", loss}, {"accuracy", accuracy},
                               {"lr", lr}, {"grad_norm", totals.grad_norm}, {"tokens", progress.step * tokens_per_step},
                               {"tokens_per_s", rate}, {"elapsed_s", elapsed}, {"log_interval_s", since_log}};
      if (totals.skipped > 0) record["skipped_steps"] = totals.skipped;
      report("train", record);
      char line[256];
      std::snprintf(line, sizeof(line), "step %lld/%lld | loss %.4f | acc %5.1f%% | lr %.2e | %s tok/s | ETA %s",
                    static_cast<long long>(progress.step), static_cast<long long>(progress.total_steps), loss,
                    100 * accuracy, lr, format_count(rate).c_str(), format_duration(eta).c_str());
      log->info("{}", line);
      step_metrics.reset_window();
      totals.loss = totals.correct = totals.count = 0;
      totals.steps = 0;
    }
    if (t.eval_every > 0 && progress.step % t.eval_every == 0 && progress.step < progress.total_steps) {
      run_eval(t.eval_examples);
    }
    if (checkpoint_step) {
      Checkpointer::check_finite(progress.step, *model);
      progress.window_loss = totals.loss;
      progress.window_correct = totals.correct;
      progress.window_count = totals.count;
      progress.window_steps = totals.steps;
      dp.barrier();  // dist: every rank got here; rank 0 alone writes
      if (dp.is_main()) log->info("checkpoint {}", checkpointer.save(progress, *model, optimizer));
    }
    if (signal != 0) {
      const std::string what = std::string(util::signal_name(signal)) + " at step " + std::to_string(progress.step) +
                               ": checkpoint saved; continue with --resume auto";
      log->warn("{}", what);
      throw InterruptedError(what);
    }
    if (stop_now) break;
  }

  profiler.finish();
  // The validation results of the final weights (where the task has a validation split: what selection reads).
  if (task->num_examples(tasks::Split::kValidation) > 0 && last_validation_step != progress.step) {
    last_validation = run_eval(0, tasks::Split::kValidation);
  }
  auto test = run_eval(t.eval_examples);
  nlohmann::json summary;
  summary["run_dir"] = run_dir;
  summary["task"] = task->name();
  summary["steps"] = progress.step;
  if (!stopped_early.is_null()) summary["early_stop"] = stopped_early;
  summary["test"] = test;
  if (!last_validation.empty()) summary["validation"] = last_validation;
  summary["parameters"] = model->num_parameters();
  summary["state"] = state_summary(*model, task->seq_len());
  const int64_t state_total = summary["state"]["total_numel"].get<int64_t>();
  const double wall = std::chrono::duration<double>(Clock::now() - started).count();
  summary["wall_time_s"] = wall;
  summary["device"] = device.str();
  summary["distributed"] = dp.summary();
  summary["step"] = runner.mode();
  if (device.is_cuda()) summary["peak_memory_bytes"] = peak_memory_bytes(device);
  if (dp.is_main()) util::write_file_atomically(util::join_path(run_dir, "summary.json"), summary.dump(2) + "\n");
  char line[256];
  std::snprintf(line, sizeof(line), "done: test %s %.4f | test loss %.4f | %lld parameters | state %lld numbers | %s",
                task->headline_metric().c_str(), test.at(task->headline_metric()), test.at("loss"),
                static_cast<long long>(model->num_parameters()), static_cast<long long>(state_total),
                format_duration(wall).c_str());
  log->info("{}", line);
  return summary;
}

}  // namespace bla::train
