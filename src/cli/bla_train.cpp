// bla-train CONFIG.yaml [--set key.path=value ...] [--resume auto|PATH] [--out DIR ...]
#include "bla/config/members.h"
#include "bla/train/config_reference.h"
#include "bla/train/ensemble_trainer.h"
#include "bla/train/trainer.h"
#include "cli/arguments.h"
#include "cli/library_errors.h"

#include <iostream>

int main(int argc, char** argv) {
  const std::string program = "bla-train";
  CLI::App app{"bla-train: train a small language model from a YAML config. Runs on the CPU or a CUDA GPU "
               "(run.device: auto takes a GPU when LibTorch sees one)."};
  std::string config_path, resume;
  std::vector<std::string> outs;
  bool overwrite = false, regroup = false;
  std::vector<std::string> overrides, listed_members;
  app.add_option("config", config_path, "the run's YAML config (see configs/)")->required();
  app.add_option("--set", overrides, "override a config value, e.g. --set train.lr=3e-4 (repeatable)");
  app.add_option("--resume", resume, "continue from the newest complete checkpoint (auto) or from a checkpoint file");
  app.add_option("--out", outs,
                 "run directory (default: <run.out_dir>/<run.name>); an ensemble: one folder holding a folder per "
                 "member, or one --out per member");
  app.add_option("--member", listed_members,
                 "train one more ensemble member with these member keys, e.g. --member run.seed=1,train.lr=3e-3 "
                 "(repeatable; bla-sweep writes these)");
  app.add_flag("--regroup", regroup,
               "an ensemble: once half its members have finished early, save the others' checkpoints and exit 7, "
               "to continue them as a smaller ensemble (bla-sweep passes it)");
  app.add_flag("--overwrite", overwrite,
               "start afresh in a run directory that holds an earlier run: its files move into <run>/previous-<time>/");
  app.add_flag_callback(
      "--keys",
      [] {
        std::cout << bla::train::config_reference_markdown();
        throw CLI::Success();
      },
      "print every config key (type, default, accepted values, meaning) as Markdown, and exit (docs/config.md)");
  app.footer(
      "Exit codes: 0 done, 1 other error, 2 config or argument error, 3 checkpoint error, 4 non-finite loss or "
      "gradient, 5 interrupted (SIGTERM, SIGINT, SIGHUP: a checkpoint was saved; continue with --resume auto), "
      "6 does not fit in memory, 7 regrouped (--regroup: the unfinished members' checkpoints were saved).");
  if (int status = bla::cli::parse_arguments(app, program, argc, argv); status >= 0) return status;
  return bla::util::run_guarded(program, bla::cli::library_errors(), [&] {
    // A member key holding a list (run.seed: [1, 2, 3]) makes an ensemble: the members train as one batched model.
    auto members = listed_members.empty() ? bla::config::load_member_configs(config_path, overrides)
                                          : bla::config::load_listed_members(config_path, overrides, listed_members);
    if (members.configs.size() > 1 || !listed_members.empty()) {
      bla::train::EnsembleOptions options;
      options.run_dirs = bla::train::member_run_directories(members.configs.front(), members.labels, outs);
      options.labels = members.labels;
      options.resume = resume;
      options.handle_signals = true;
      options.overwrite = overwrite;
      options.regroup = regroup;
      bla::train::train_ensemble(std::move(members.configs), options);
      return 0;
    }
    if (regroup) {
      throw bla::config::ConfigError(
          "--regroup applies to ensembles (a member key holding a list, or --member) and this is one run");
    }
    if (outs.size() > 1) {
      throw bla::config::ConfigError("--out was given " + std::to_string(outs.size()) +
                                     " times but no member key holds a list: one run, one --out");
    }
    bla::train::RunOptions options;
    options.run_dir = outs.empty() ? "" : outs.front();
    options.resume = resume;
    options.handle_signals = true;
    options.overwrite = overwrite;
    bla::train::train(std::move(members.configs.front()), options);
    return 0;
  });
}
