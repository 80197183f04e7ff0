// Checkpoints: model, optimizer, RNG state and a JSON description (step, data
// position, schedule, the resolved config) in one file, written atomically
// and sealed with a checksum so that a truncated or corrupted file is
// recognised and rejected with a clear message. Every reader turns any
// failure to read a file (not a regular file, a broken seal, a payload that
// does not deserialise behind a valid seal) into a CheckpointError of one
// line that names the file; no LibTorch backtrace reaches the user.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace bla::config {
struct Config;
}
namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace bla::train {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Serialises and seals; `meta` must hold "model_config" (the model section as
// YAML text, model_config_yaml), compared on load.
std::string encode_checkpoint(const torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                              const nlohmann::json& meta);
void save_checkpoint(const std::string& path, const torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                     const nlohmann::json& meta);
// Loads into `model` (and `optimizer` when given and stored, and the CPU RNG);
// returns the meta, with "optimizer_restored" telling whether the optimizer
// state was in the file (weights-only checkpoints have none). Throws
// CheckpointError naming the file and what is wrong. When
// `expected_model_config` is given (the current model section, as
// model_config_yaml writes it), a checkpoint whose stored "model_config"
// differs in any key is refused, naming the first difference
// (model_config_difference); empty: only the tensor shapes are compared.
nlohmann::json load_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer,
                               const std::string& expected_model_config = "");
// Reads only the meta (checks the seal).
nlohmann::json read_checkpoint_meta(const std::string& path);
// Reads the whole payload into a throwaway archive, as a load would, without
// a model: the meta, every model tensor against the shapes the meta lists,
// the optimizer state and the RNG state. Throws CheckpointError (one line,
// naming the file) on any failure, so that --resume auto can skip a
// checkpoint whose payload is damaged behind a valid checksum.
void verify_checkpoint(const std::string& path);

// The model section of a resolved config as YAML text: what checkpoints
// store as meta["model_config"] (call it after the model was built, when
// every mixer parameter has been read).
std::string model_config_yaml(const config::Config& config);
// The first difference between two model sections (YAML text, as
// model_config_yaml writes them), compared key by key as YAML trees, numbers
// by value; "" when they agree. E.g. "model.mixer: checkpoint has bla, config
// has attention", "model.mixer.slots: checkpoint has 8, config has 16",
// "model.mixer[1].window: ...". `saved` is the checkpoint's, `current` the
// config's.
std::string model_config_difference(const std::string& saved, const std::string& current);
// The same for the data section of two whole resolved configs (YAML text, as
// meta["config"] holds them), leaving out what does not change the training
// data (data.path: the folder may move; data.test_examples).
std::string data_config_difference(const std::string& saved_config, const std::string& current_config);

// The checkpoints of one run directory: <dir>/step-00000100.ckpt, newest last.
class CheckpointDirectory {
 public:
  CheckpointDirectory(std::string dir, int64_t keep) : dir_(std::move(dir)), keep_(keep) {}
  std::string path_for(int64_t step) const;
  std::vector<std::string> list() const;
  // Saves atomically, then deletes all but the newest `keep`.
  std::string save(int64_t step, const torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                   const nlohmann::json& meta) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int64_t keep_;
};

}  // namespace bla::train
