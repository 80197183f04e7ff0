// Small things the tests share: temporary folders and tiny configs.
#pragma once

#include "bla/config/config.h"
#include "bla/model/lm.h"
#include "bla/train/checkpoint.h"
#include "bla/util/files.h"

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <string>

namespace bla::testing {

// A fresh folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() : path_(util::make_temp_directory("bla-test")) {}
  ~TempDir() { util::remove_tree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path_; }
  std::string operator/(const std::string& name) const { return util::join_path(path_, name); }

 private:
  std::string path_;
};

// A tiny MQAR run: trains in seconds on one core. `mixer` is a YAML value
// for model.mixer; `extra` is appended to the model section.
inline std::string tiny_mqar_config(const std::string& mixer = "attention", const std::string& extra = "") {
  return "run: {name: tiny, seed: 3, threads: 1, device: cpu}\n"
         "model:\n  d_model: 32\n  layers: 2\n  heads: 2\n  mixer: " + mixer + "\n" + extra +
         "data: {task: mqar, vocab_size: 64, seq_len: 32, num_kv_pairs: 4, train_examples: 2000, test_examples: 64}\n"
         "train: {batch_size: 16, steps: 12, lr: 3.0e-3, warmup_steps: 2, log_every: 2, eval_examples: 64,\n"
         "        checkpoint_every: 3, keep_checkpoints: 10}\n";
}

// Small settings of every mixer type for tiny sequences (chunks that divide
// them, windows shorter than them), as YAML flow maps.
inline const std::map<std::string, std::string>& small_mixer_params() {
  static const std::map<std::string, std::string> params = {
      {"attention", "{}"},
      {"swa", "{window: 5}"},
      {"bla", "{window: 6, slots: 3, chunk: 4}"},
      {"gatedfwa", "{window: 5}"},
      {"gsa", "{slots: 4, chunk: 4}"},
      {"gla", "{chunk: 4}"},
      {"mamba2", "{chunk: 4, d_state: 8, head_dim: 8}"}};
  return params;
}

// The parameters stored in the newest checkpoint of run directory `dir` of a
// tiny_mqar_config() run (vocabulary 64, sequence 32).
inline std::vector<torch::Tensor> newest_tiny_parameters(const config::Config& config, const std::string& dir) {
  model::LanguageModel model(config.model, 64, 32);
  train::CheckpointDirectory checkpoints(util::join_path(dir, "checkpoints"), 100);
  train::load_checkpoint(checkpoints.list().back(), *model, nullptr);
  return model->parameters();
}

// A run whose weights went bad: one weight of the checkpoint at `path` of a
// tiny_mqar_config() run set to NaN (its optimizer state is dropped).
inline void poison_tiny_checkpoint(const config::Config& config, const std::string& path) {
  model::LanguageModel model(config.model, 64, 32);
  auto meta = train::load_checkpoint(path, *model, nullptr);
  {
    torch::NoGradGuard no_grad;
    model->parameters()[0][0][0] = std::numeric_limits<float>::quiet_NaN();
  }
  train::save_checkpoint(path, *model, nullptr, meta);
}

// The message of the ConfigError that parsing `yaml` (named cfg.yaml) with
// `overrides` raises, or "(no error)".
inline std::string config_error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    config::parse_config(yaml, "cfg.yaml", overrides);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// What a shell command printed (stdout and stderr together) and how it ended.
struct CommandOutcome {
  int status = -1;  // exit status, or -1 when it did not exit normally
  std::string output;
  double seconds = 0;
};

// Runs a shell command under `timeout` (killed after limit_s seconds).
inline CommandOutcome run_command(const std::string& command, int limit_s) {
  const auto started = std::chrono::steady_clock::now();
  const std::string full = "timeout -k 5 " + std::to_string(limit_s) + " " + command + " 2>&1";
  CommandOutcome out;
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.output.append(buffer, n);
  const int status = ::pclose(pipe);
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

// Whether `python3` runs here (the tests of scripts/*.py skip without it).
inline bool have_python() { return run_command("python3 --version", 30).status == 0; }

}  // namespace bla::testing
