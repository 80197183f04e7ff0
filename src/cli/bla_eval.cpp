// bla-eval CHECKPOINT [--set key.path=value ...] [--split test|validation|train] [--out FILE.json]
//          [--max-examples N] [--batch-size N]
// Rebuilds model and task from the config stored in the checkpoint, scores
// the split (the task's metrics and the loss), prints the result as JSON and
// writes it atomically (default: next to the checkpoint, <stem>.eval-<split>.json).
#include "bla/config/config.h"
#include "bla/train/checkpoint.h"
#include "bla/train/evaluate.h"
#include "bla/train/restore.h"
#include "bla/util/files.h"

#include "cli/arguments.h"
#include "cli/library_errors.h"
#include "cli/split_option.h"

#include <torch/torch.h>

#include <chrono>
#include <limits>
#include <iostream>

int main(int argc, char** argv) {
  const std::string program = "bla-eval";
  CLI::App app{"bla-eval: evaluate a checkpoint on its task's test (or validation, or train) split. Runs on the device of the stored "
               "config (run.device); --set run.device=cpu needs no GPU."};
  std::string checkpoint, out, split_name = "test";
  std::vector<std::string> overrides;
  int64_t max_examples = 0, batch_size = 0;
  app.add_option("checkpoint", checkpoint, "a checkpoint file written by bla-train (runs/NAME/checkpoints/step-*.ckpt)")
      ->required();
  app.add_option("--set", overrides,
                 "override a value of the stored config, e.g. --set data.test_automata=100 or run.device=cpu (repeatable)");
  bla::cli::add_split_option(app, split_name);
  app.add_option("--out", out, "where to write the JSON result (default: <checkpoint stem>.eval-<split>.json)");
  app.add_option("--max-examples", max_examples, "score only the first N examples (default: the whole split)")
      ->check(bla::cli::IntegerIn(0, std::numeric_limits<int64_t>::max()));
  app.add_option("--batch-size", batch_size, "examples per batch (default: the config's train.eval_batch_size or batch_size)")
      ->check(bla::cli::IntegerIn(0, 1 << 16));
  app.footer("Exit codes: 0 done, 1 other error, 2 config or argument error, 3 checkpoint error.");
  if (int status = bla::cli::parse_arguments(app, program, argc, argv); status >= 0) return status;
  return bla::util::run_guarded(program, bla::cli::library_errors(), [&] {
    const auto started = std::chrono::steady_clock::now();
    bla::train::RestoreOptions restore;
    restore.overrides = overrides;
    auto run = bla::train::restore_checkpoint(checkpoint, restore);
    const auto& t = run.config.train;
    bla::train::EvalOptions options;
    options.max_examples = max_examples;
    options.batch_size = batch_size > 0 ? batch_size : (t.eval_batch_size > 0 ? t.eval_batch_size : t.batch_size);
    options.bf16 = run.device.is_cuda() && t.precision != "fp32";
    const auto split = bla::cli::split_of(split_name);
    if (run.task->num_examples(split) == 0) {
      throw bla::util::ArgumentError("--split " + split_name + ": task " + run.task->name() + " has no " + split_name +
                                     " examples in this config (e.g. set data.validation_examples for mqar)");
    }
    auto metrics = bla::train::evaluate(*run.model, *run.task, split, run.device, options);

    nlohmann::json result;
    result["checkpoint"] = checkpoint;
    result["step"] = run.meta.value("step", int64_t{0});
    result["task"] = run.task->name();
    result["split"] = split_name;
    result["headline_metric"] = run.task->headline_metric();
    result["metrics"] = metrics;
    result["overrides"] = overrides;
    result["device"] = run.device.str();
    result["precision"] = options.bf16 ? "bf16" : "fp32";
    result["parameters"] = run.model->num_parameters();
    result["state"] = bla::train::state_summary(*run.model, run.task->seq_len());
    result["wall_time_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (out.empty()) {
      std::string stem = bla::util::file_name(checkpoint);
      stem = stem.substr(0, stem.rfind('.'));  // step-00000300.ckpt -> step-00000300
      out = bla::util::join_path(bla::util::parent_path(checkpoint), stem + ".eval-" + split_name + ".json");
    }
    bla::util::write_file_atomically(out, result.dump(2) + "\n");
    std::cout << result.dump(2) << std::endl;
    std::cerr << "bla-eval: wrote " << out << "\n";
    return 0;
  });
}
