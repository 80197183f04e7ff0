// bla-train CONFIG.yaml [--set key.path=value ...] [--resume auto|PATH] [--out DIR]
#include "bla/config/config.h"
#include "bla/train/trainer.h"
#include "cli/arguments.h"
#include "cli/library_errors.h"

int main(int argc, char** argv) {
  const std::string program = "bla-train";
  CLI::App app{"bla-train: train a small language model from a YAML config. Runs on the CPU or a CUDA GPU "
               "(run.device: auto takes a GPU when LibTorch sees one)."};
  std::string config_path, resume, out;
  bool overwrite = false;
  std::vector<std::string> overrides;
  app.add_option("config", config_path, "the run's YAML config (see configs/)")->required();
  app.add_option("--set", overrides, "override a config value, e.g. --set train.lr=3e-4 (repeatable)");
  app.add_option("--resume", resume, "continue from the newest complete checkpoint (auto) or from a checkpoint file");
  app.add_option("--out", out, "run directory (default: <run.out_dir>/<run.name>)");
  app.add_flag("--overwrite", overwrite,
               "start afresh in a run directory that holds an earlier run: its files move into <run>/previous-<time>/");
  app.footer("Exit codes: 0 done, 1 other error, 2 config or argument error, 3 checkpoint error, 4 non-finite loss or "
             "gradient, 5 interrupted (SIGTERM, SIGINT, SIGHUP: a checkpoint was saved; continue with --resume auto).");
  if (int status = bla::cli::parse_arguments(app, program, argc, argv); status >= 0) return status;
  return bla::util::run_guarded(program, bla::cli::library_errors(), [&] {
    auto config = bla::config::load_config(config_path, overrides);
    bla::train::RunOptions options;
    options.run_dir = out;
    options.resume = resume;
    options.handle_signals = true;
    options.overwrite = overwrite;
    bla::train::train(std::move(config), options);
    return 0;
  });
}
