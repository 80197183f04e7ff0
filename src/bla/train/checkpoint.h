// Checkpoints: model, optimizer, RNG state and a JSON description (step, data
// position, schedule, the resolved config) in one file, written atomically
// and sealed with a checksum so that a truncated or corrupted file is
// recognised and rejected with a clear message.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

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
// YAML text), compared on load.
std::string encode_checkpoint(const torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                              const nlohmann::json& meta);
void save_checkpoint(const std::string& path, const torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                     const nlohmann::json& meta);
// Loads into `model` (and `optimizer` when given and stored, and the CPU RNG);
// returns the meta, with "optimizer_restored" telling whether the optimizer
// state was in the file (weights-only checkpoints have none). Throws CheckpointError naming the file and what is wrong.
nlohmann::json load_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer);
// Reads only the meta (checks the seal).
nlohmann::json read_checkpoint_meta(const std::string& path);

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
