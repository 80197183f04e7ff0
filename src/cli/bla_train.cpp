// bla-train CONFIG.yaml [--set key.path=value ...] [--resume auto|PATH] [--out DIR]
#include "bla/config/config.h"
#include "bla/train/checkpoint.h"
#include "bla/train/trainer.h"

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"bla-train: train a small language model from a YAML config"};
  std::string config_path, resume, out;
  std::vector<std::string> overrides;
  app.add_option("config", config_path, "the run's YAML config (see configs/)")->required();
  app.add_option("--set", overrides, "override a config value, e.g. --set train.lr=3e-4 (repeatable)");
  app.add_option("--resume", resume, "continue from the newest complete checkpoint (auto) or from a checkpoint file");
  app.add_option("--out", out, "run directory (default: <run.out_dir>/<run.name>)");
  CLI11_PARSE(app, argc, argv);
  try {
    auto config = bla::config::load_config(config_path, overrides);
    bla::train::RunOptions options;
    options.run_dir = out;
    options.resume = resume;
    options.handle_signals = true;
    bla::train::train(std::move(config), options);
    return 0;
  } catch (const bla::config::ConfigError& e) {
    std::cerr << "bla-train: config error: " << e.what() << "\n";
    return 2;
  } catch (const bla::train::CheckpointError& e) {
    std::cerr << "bla-train: " << e.what() << "\n";
    return 3;
  } catch (const bla::train::NonFiniteError& e) {
    std::cerr << "bla-train: " << e.what() << "\n";
    return 4;
  } catch (const bla::train::InterruptedError& e) {
    std::cerr << "bla-train: interrupted: " << e.what() << "\n";
    return 5;
  } catch (const std::exception& e) {
    std::cerr << "bla-train: error: " << e.what() << "\n";
    return 1;
  }
}
