#include "bla/train/task_and_model.h"

#include <torch/torch.h>

#include <string>

namespace bla::train {

int64_t model_vocabulary(const config::Config& config, const tasks::Task& task) {
  const int64_t vocab = config.model.vocab_size > 0 ? config.model.vocab_size : task.vocab_size();
  if (vocab < task.vocab_size()) {
    throw config::ConfigError("model.vocab_size (" + std::to_string(vocab) + ") is smaller than the task's vocabulary (" +
                              std::to_string(task.vocab_size()) + "); remove it or raise it");
  }
  return vocab;
}

model::LanguageModel build_model(const config::Config& config, int64_t vocab, int64_t seq_len, bool data_read) {
  model::LanguageModel model(config.model, vocab, seq_len);
  if (data_read) {
    config.finish_deferred_sections();
  } else {
    for (const auto& spec : config.model.mixers) spec.params->finish();
  }
  return model;
}

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  torch::Device device(name);
  if (device.is_cuda() && !torch::cuda::is_available()) {
    throw config::ConfigError("run.device is '" + name + "' but this LibTorch sees no CUDA device; use cpu or auto");
  }
  return device;
}

nlohmann::json state_summary(const model::LanguageModelImpl& model, int64_t context) {
  nlohmann::json layers = nlohmann::json::array();
  int64_t total = 0;
  for (int64_t layer = 0; layer < model.num_layers(); ++layer) {
    const int64_t n = model.state_numel(layer, context);
    total += n;
    layers.push_back({{"layer", layer}, {"mixer", model.mixer(layer).describe()}, {"state_numel", n}});
  }
  return {{"per_layer", layers}, {"total_numel", total}, {"context", context}};
}

}  // namespace bla::train
