#include "bla/train/trainer.h"

#include "bla/compat.h"
#include "bla/dist/data_parallel.h"
#include "bla/model/lm.h"
#include "bla/tasks/task.h"
#include "bla/train/checkpoint.h"
#include "bla/train/data_order.h"
#include "bla/train/evaluate.h"
#include "bla/train/metrics.h"
#include "bla/train/restore.h"
#include "bla/train/schedule.h"
#include "bla/util/files.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

namespace bla::train {


std::string run_directory(const config::Config& config, const RunOptions& options) {
  if (!options.run_dir.empty()) return options.run_dir;
  return util::join_path(config.run.out_dir, config.run.name);
}

namespace {
using Clock = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> make_logger(const std::string& run_dir, bool quiet) {
  std::vector<spdlog::sink_ptr> sinks;
  if (run_dir.empty()) {  // dist: ranks other than 0 print only warnings and errors, and write no file
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink->set_level(spdlog::level::warn);
    auto logger = std::make_shared<spdlog::logger>("bla-train", sink);
    logger->set_pattern("[%H:%M:%S] %v");
    return logger;
  }
  if (!quiet) sinks.push_back(std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
  sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(util::join_path(run_dir, "train.log")));
  auto logger = std::make_shared<spdlog::logger>("bla-train", sinks.begin(), sinks.end());
  logger->set_pattern("[%H:%M:%S] %v");
  logger->flush_on(spdlog::level::info);
  return logger;
}

// AdamW with decay on matrices only (nanoGPT's rule: norms and other vectors are not decayed).
std::unique_ptr<torch::optim::AdamW> make_optimizer(torch::nn::Module& model, const config::TrainConfig& t) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model.parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(t.lr).betas({t.beta1, t.beta2}).eps(t.eps).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(t.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(t.lr));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

std::string model_section_yaml(const config::Config& config) {
  YAML::Emitter out;
  out << config.resolved["model"];
  return out.c_str();
}

std::string checkpoint_to_resume(const std::string& resume, const CheckpointDirectory& checkpoints,
                                 spdlog::logger& log) {
  if (resume.empty()) return "";
  if (resume != "auto") {
    if (!util::path_exists(resume)) throw CheckpointError("--resume " + resume + ": no such checkpoint file");
    return resume;
  }
  auto all = checkpoints.list();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      read_checkpoint_meta(*it);
      return *it;
    } catch (const CheckpointError& e) {
      log.warn("skipping {}", e.what());
    }
  }
  log.info("--resume auto: no checkpoint in {}, starting from step 0", checkpoints.dir());
  return "";
}
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
  int64_t vocab = config.model.vocab_size > 0 ? config.model.vocab_size : task->vocab_size();
  if (vocab < task->vocab_size()) {
    throw config::ConfigError("model.vocab_size (" + std::to_string(vocab) + ") is smaller than the task's vocabulary (" +
                              std::to_string(task->vocab_size()) + "); remove it or raise it");
  }
  model::LanguageModel model(config.model, vocab, task->seq_len());
  config.finish_deferred_sections();
  model->to(device);
  model->train();

  const std::string run_dir = run_directory(config, options);
  if (dp.is_main()) {  // dist: rank 0 alone writes files
    util::create_directories(run_dir);
    util::write_file_atomically(util::join_path(run_dir, "config.yaml"), config.resolved_yaml());
  }
  auto log = make_logger(dp.is_main() ? run_dir : "", options.quiet);
  CheckpointDirectory checkpoints(util::join_path(run_dir, "checkpoints"), t.keep_checkpoints);

  auto optimizer = make_optimizer(*model, t);
  const int64_t train_examples = task->num_examples(tasks::Split::kTrain);
  const int64_t total_steps =
      t.steps > 0 ? t.steps : static_cast<int64_t>(std::ceil(t.epochs * train_examples / t.batch_size));
  DataOrder order(train_examples, config.run.seed);
  const int64_t micro_batch = t.batch_size / t.grad_accum;

  int64_t step = 0;
  double window_loss = 0, window_correct = 0, window_count = 0;
  int64_t window_steps = 0;
  if (auto path = checkpoint_to_resume(options.resume, checkpoints, *log); !path.empty()) {
    auto meta = load_checkpoint(path, *model, optimizer.get());
    step = meta.at("step").get<int64_t>();
    order.set_position(meta.at("data_position").get<int64_t>());
    window_loss = meta.at("window").at("loss").get<double>();
    window_correct = meta.at("window").at("correct").get<double>();
    window_count = meta.at("window").at("count").get<double>();
    window_steps = meta.at("window").at("steps").get<int64_t>();
    log->info("resumed from {} at step {}", path, step);
    if (!meta.at("optimizer_restored").get<bool>()) log->warn("{} holds no optimizer state: AdamW starts afresh", path);
  }
  dp.check_same(step, "the step to start from");  // dist: every rank resumed from the same checkpoint
  dp.broadcast(model->parameters());               // dist: rank 0's parameters everywhere
  std::optional<MetricsLog> metrics;
  if (dp.is_main()) metrics.emplace(run_dir, step);

  log->info("run {} on {} | task {} (seq {}, vocab {}) | {} parameters", run_dir, device.str(), task->name(),
            task->seq_len(), vocab, model->num_parameters());
  for (int64_t layer = 0; layer < model->num_layers(); ++layer) {
    log->info("  layer {}: {} | state {} numbers", layer, model->mixer(layer).describe(),
              model->mixer(layer).state_numel(task->seq_len()));
  }
  log->info("{} steps of {} examples ({} tokens), lr {} {}, warmup {}", total_steps, t.batch_size,
            t.batch_size * task->seq_len(), t.lr, t.schedule, t.warmup_steps);

  auto meta_now = [&]() {
    nlohmann::json meta;
    meta["step"] = step;
    meta["data_position"] = order.position();
    meta["total_steps"] = total_steps;
    meta["window"] = {{"loss", window_loss}, {"correct", window_correct}, {"count", window_count}, {"steps", window_steps}};
    meta["model_config"] = model_section_yaml(config);
    meta["config"] = config.resolved_yaml();
    meta["vocab_size"] = vocab;
    return meta;
  };
  EvalOptions eval_options{t.eval_examples, t.eval_batch_size > 0 ? t.eval_batch_size : t.batch_size, bf16};
  auto run_eval = [&](int64_t examples) {
    EvalOptions o = eval_options;
    o.max_examples = examples;
    auto result = evaluate(*model, *task, tasks::Split::kTest, device, o);
    nlohmann::json record = {{"step", step}, {"split", "test"}};
    std::string line = "eval step " + std::to_string(step);
    for (const auto& [key, value] : result) {
      record[key] = value;
      char buffer[64];
      std::snprintf(buffer, sizeof(buffer), " | %s %.4f", key.c_str(), value);
      line += buffer;
    }
    if (metrics) metrics->write(record);
    log->info("{}", line);
    return result;
  };

  auto params = model->parameters();
  dp.attach(params);  // dist: gradient averaging hooks
  if (dp.active()) log->info("{}", dp.describe());
  const double tokens_per_step = static_cast<double>(t.batch_size * task->seq_len());
  auto last_log = Clock::now();
  const int64_t first_step = step;
  const auto loop_started = Clock::now();
  double last_grad_norm = 0;
  while (step < total_steps) {
    const double lr = learning_rate(t, step, total_steps);
    set_learning_rate(*optimizer, lr);
    optimizer->zero_grad();
    double step_loss = 0, step_correct = 0, step_count = 0;
    for (int64_t micro = 0; micro < t.grad_accum; ++micro) {
      auto batch = task->batch(tasks::Split::kTrain, dp.shard(order.next(micro_batch)));  // dist: this rank's share
      if (bf16) compat::set_cuda_autocast(true, at::kBFloat16);
      auto result = supervised_loss(*model, batch, device);
      if (bf16) compat::set_cuda_autocast(false, at::kBFloat16);
      dp.begin_micro_step(micro == t.grad_accum - 1);  // dist: only the last micro-step all-reduces
      (result.loss / static_cast<double>(t.grad_accum)).backward();
      step_loss += result.loss.item<double>() / static_cast<double>(t.grad_accum);
      step_correct += result.logits.argmax(-1).eq(batch.targets.to(device).masked_select(
                          batch.targets.to(device).ne(tasks::kIgnoreIndex))).sum().item<double>();
      step_count += static_cast<double>(result.count);
    }
    dp.finish_gradients();  // dist: .grad = average over ranks
    {                       // dist: the logged numbers cover the global batch
      const auto totals = dp.sum({step_loss, step_correct, step_count});
      step_loss = totals[0] / dp.world_size();
      step_correct = totals[1];
      step_count = totals[2];
    }
    const double max_norm = t.grad_clip > 0 ? t.grad_clip : std::numeric_limits<double>::infinity();
    const double grad_norm = torch::nn::utils::clip_grad_norm_(params, max_norm);
    if (!std::isfinite(step_loss) || !std::isfinite(grad_norm)) {
      std::string what = "step " + std::to_string(step + 1) + ": " + (!std::isfinite(step_loss) ? "loss" : "gradient norm") +
                         " is not finite (loss " + std::to_string(step_loss) + ", gradient norm " +
                         std::to_string(grad_norm) + ")";
      if (t.on_nonfinite == "stop") {
        log->error("{}; stopping without writing a checkpoint (lower train.lr, or set train.on_nonfinite: skip)", what);
        throw NonFiniteError(what + "; the run stopped, the last checkpoint is untouched");
      }
      log->warn("{}; skipping this step", what);
      optimizer->zero_grad();
    } else {
      optimizer->step();
      window_loss += step_loss;
      window_correct += step_correct;
      window_count += step_count;
      window_steps += 1;
      last_grad_norm = grad_norm;
    }
    step += 1;

    if (step % t.log_every == 0 || step == total_steps) {
      const auto now = Clock::now();
      const double elapsed = std::chrono::duration<double>(now - loop_started).count();
      const double since_log = std::chrono::duration<double>(now - last_log).count();
      last_log = now;
      const double rate = (step - first_step) * tokens_per_step / std::max(elapsed, 1e-9);
      const double eta = (total_steps - step) * tokens_per_step / std::max(rate, 1e-9);
      const double loss = window_steps > 0 ? window_loss / window_steps : NAN;
      const double accuracy = window_count > 0 ? window_correct / window_count : NAN;
      if (metrics) metrics->write({{"step", step}, {"split", "train"}, {"loss", loss}, {"accuracy", accuracy}, {"lr", lr},
                     {"grad_norm", last_grad_norm}, {"tokens", step * tokens_per_step},
                     {"tokens_per_s", rate}, {"elapsed_s", elapsed}, {"log_interval_s", since_log}});
      char line[256];
      std::snprintf(line, sizeof(line), "step %lld/%lld | loss %.4f | acc %5.1f%% | lr %.2e | %s tok/s | ETA %s",
                    static_cast<long long>(step), static_cast<long long>(total_steps), loss, 100 * accuracy, lr,
                    format_count(rate).c_str(), format_duration(eta).c_str());
      log->info("{}", line);
      window_loss = window_correct = window_count = 0;
      window_steps = 0;
    }
    if (t.eval_every > 0 && step % t.eval_every == 0 && step < total_steps) run_eval(t.eval_examples);
    if ((t.checkpoint_every > 0 && step % t.checkpoint_every == 0) || step == total_steps) {
      for (const auto& p : params) {
        if (!torch::isfinite(p).all().item<bool>()) {
          throw NonFiniteError("step " + std::to_string(step) + ": parameters are not finite; no checkpoint written");
        }
      }
      dp.barrier();  // dist: every rank got here; rank 0 alone writes
      if (dp.is_main()) {
        auto path = checkpoints.save(step, *model, optimizer.get(), meta_now());
        log->info("checkpoint {}", path);
      }
    }
  }

  auto test = run_eval(t.eval_examples);
  nlohmann::json summary;
  summary["run_dir"] = run_dir;
  summary["task"] = task->name();
  summary["steps"] = step;
  summary["test"] = test;
  summary["parameters"] = model->num_parameters();
  nlohmann::json layers = nlohmann::json::array();
  int64_t state_total = 0;
  for (int64_t layer = 0; layer < model->num_layers(); ++layer) {
    int64_t n = model->mixer(layer).state_numel(task->seq_len());
    state_total += n;
    layers.push_back({{"layer", layer}, {"mixer", model->mixer(layer).describe()}, {"state_numel", n}});
  }
  summary["state"] = {{"per_layer", layers}, {"total_numel", state_total}, {"context", task->seq_len()}};
  const double wall = std::chrono::duration<double>(Clock::now() - started).count();
  summary["wall_time_s"] = wall;
  summary["device"] = device.str();
  summary["distributed"] = dp.summary();
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
