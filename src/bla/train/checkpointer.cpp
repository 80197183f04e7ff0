#include "bla/train/checkpointer.h"

#include "bla/data/tokenizer_record.h"
#include "bla/tasks/text.h"

#include "bla/train/trainer.h"
#include "bla/util/checksum.h"
#include "bla/util/files.h"

#include <signal.h>
#include <unistd.h>
#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <chrono>
#include <cstdio>
#include <random>
#include <regex>

namespace bla::train {

namespace {
std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
  return stamp;
}

// Moves `from` to `to` (same file system); throws naming both on failure.
void move_path(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw std::runtime_error("cannot move " + from + " to " + to + ": " + std::strerror(errno));
  }
}

}  // namespace

Checkpointer::Checkpointer(const std::string& run_dir, const config::Config& config, const tasks::Task& task,
                           int64_t vocab, spdlog::logger& log)
    : directory_(util::join_path(run_dir, "checkpoints"), config.train.keep_checkpoints),
      config_(config),
      vocab_(vocab),
      seq_len_(task.seq_len()),
      log_(log) {
  if (const auto* text = dynamic_cast<const tasks::TextTask*>(&task)) tokenizer_ = data::tokenizer_record(*text->tokenizer());
}

std::string new_run_id() {
  std::random_device device;
  std::mt19937_64 rng((static_cast<uint64_t>(device()) << 32) ^ device() ^
                      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(rng()));
  return text;
}

nlohmann::json run_identity(const config::Config& config, const std::string& run_id) {
  YAML::Emitter data;
  data << config.resolved["data"];
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx",
                static_cast<unsigned long long>(util::fnv1a64(model_config_yaml(config) + "\n---\n" + data.c_str())));
  return {{"id", run_id}, {"model_data_hash", hash}};
}

std::string Checkpointer::claim_for_fresh_start(const std::string& run_dir, bool overwrite) {
  const auto existing = CheckpointDirectory(util::join_path(run_dir, "checkpoints"), 1).list();
  if (existing.empty()) return "";
  if (!overwrite) {
    throw config::ConfigError(run_dir + " holds " + std::to_string(existing.size()) + " checkpoint(s) of an earlier run (newest " +
                              util::file_name(existing.back()) +
                              "): continue it with --resume auto, train into a new --out, or pass --overwrite to move "
                              "the earlier run's files aside");
  }
  const std::string aside = util::join_path(run_dir, "previous-" + timestamp());
  util::create_directories(aside);
  for (const auto& name : util::list_directory(run_dir)) {
    if (name.rfind("previous-", 0) == 0) continue;
    move_path(util::join_path(run_dir, name), util::join_path(aside, name));
  }
  return aside;
}

std::string Checkpointer::set_aside_later_than(int64_t step) const {
  std::vector<std::string> later;
  for (const auto& path : directory_.list()) {
    if (path > directory_.path_for(step)) later.push_back(path);  // zero-padded steps sort by name
  }
  if (later.empty()) return "";
  const std::string aside = util::join_path(directory_.dir(), "abandoned-after-" + std::to_string(step) + "-" + timestamp());
  util::create_directories(aside);
  for (const auto& path : later) move_path(path, util::join_path(aside, util::file_name(path)));
  return aside;
}

std::vector<std::string> Checkpointer::remove_stale_temporaries() const {
  static const std::regex pattern(R"(step-\d{8,}\.ckpt\.tmp\.(\d+))");
  std::vector<std::string> removed;
  for (const auto& name : util::list_directory(directory_.dir())) {
    std::smatch match;
    if (!std::regex_match(name, match, pattern)) continue;
    const auto pid = static_cast<pid_t>(std::stoll(match[1].str()));
    if (::kill(pid, 0) == 0 && pid != ::getpid()) continue;  // a live process is still writing it
    util::remove_file(util::join_path(directory_.dir(), name));
    removed.push_back(name);
  }
  return removed;
}

int64_t Checkpointer::step_of(const std::string& path) {
  const std::string name = util::file_name(path);
  if (name.rfind("step-", 0) != 0) return -1;
  const size_t end = name.find('.');
  const std::string digits = name.substr(5, end == std::string::npos ? std::string::npos : end - 5);
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

std::string Checkpointer::to_resume(const std::string& resume, int64_t at_most_step) const {
  if (resume.empty()) return "";
  if (resume != "auto") {
    if (!util::path_exists(resume)) throw CheckpointError("--resume " + resume + ": no such checkpoint file");
    return resume;
  }
  auto all = directory_.list();
  std::string newest_problem;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (step_of(*it) > at_most_step) continue;
    try {
      verify_checkpoint(*it);  // the whole payload, not only the seal
      return *it;
    } catch (const CheckpointError& e) {
      log_.warn("skipping {}", e.what());
      if (newest_problem.empty()) newest_problem = e.what();
    }
  }
  if (!all.empty()) {  // starting afresh would let rotation delete the new checkpoints and keep the damaged ones
    throw CheckpointError("--resume auto: every checkpoint in " + directory_.dir() + " (" + std::to_string(all.size()) +
                          ") is damaged, the newest: " + newest_problem +
                          "; move them aside to start afresh, or pass --resume with a good checkpoint file");
  }
  log_.info("--resume auto: no checkpoint in {}, starting from step 0", directory_.dir());
  return "";
}

Progress Checkpointer::load(const std::string& path, torch::nn::Module& model, Optimizer& optimizer) const {
  if (const auto meta = read_checkpoint_meta(path); meta.contains("config")) {
    // The data too: another task, seed or generator setting would continue a different run.
    if (auto d = data_config_difference(meta.at("config").get<std::string>(), config_.resolved_yaml()); !d.empty()) {
      throw CheckpointError("checkpoint " + path + " was made with another data config (" + d +
                            "); resume with the data section it was made with, or start a new run");
    }
  }
  auto meta = load_checkpoint(path, model, &optimizer.state(), model_config_yaml(config_));
  optimizer.after_load();
  Progress p;
  p.step = meta.at("step").get<int64_t>();
  p.data_position = meta.at("data_position").get<int64_t>();
  p.total_steps = meta.at("total_steps").get<int64_t>();
  const auto& w = meta.at("window");
  p.window_loss = w.at("loss").get<double>();
  p.window_correct = w.at("correct").get<double>();
  p.window_count = w.at("count").get<double>();
  p.window_steps = w.at("steps").get<int64_t>();
  p.run_id = meta.contains("run") ? meta.at("run").value("id", "") : "";  // older checkpoints have none
  log_.info("resumed from {} at step {}", path, p.step);
  if (!meta.at("optimizer_restored").get<bool>()) log_.warn("{} holds no optimizer state: AdamW starts afresh", path);
  return p;
}

void Checkpointer::check_finite(int64_t step, const torch::nn::Module& model) {
  std::vector<torch::Tensor> finite;
  for (const auto& p : model.parameters()) finite.push_back(torch::isfinite(p).all());
  if (!finite.empty() && !torch::stack(finite).all().item<bool>()) {
    throw NonFiniteError("step " + std::to_string(step) + ": parameters are not finite; no checkpoint written");
  }
}

std::string Checkpointer::save(const Progress& progress, const torch::nn::Module& model, Optimizer& optimizer) const {
  optimizer.before_save();
  nlohmann::json meta;
  meta["step"] = progress.step;
  meta["data_position"] = progress.data_position;
  meta["total_steps"] = progress.total_steps;
  meta["window"] = {{"loss", progress.window_loss},
                    {"correct", progress.window_correct},
                    {"count", progress.window_count},
                    {"steps", progress.window_steps}};
  meta["run"] = run_identity(config_, progress.run_id);
  meta["model_config"] = model_config_yaml(config_);
  meta["config"] = config_.resolved_yaml();
  meta["vocab_size"] = vocab_;
  meta["seq_len"] = seq_len_;
  if (!tokenizer_.is_null()) meta["tokenizer"] = tokenizer_;
  return directory_.save(progress.step, model, &optimizer.state(), meta);
}

}  // namespace bla::train
