#include "bla/train/restore.h"

#include "bla/data/shards.h"
#include "bla/data/tokenizer_record.h"
#include "bla/tasks/text.h"
#include "bla/train/checkpoint.h"
#include "bla/train/task_and_model.h"
#include "bla/util/files.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace bla::train {

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  torch::Device device(name);
  if (device.is_cuda() && !torch::cuda::is_available()) {
    throw config::ConfigError("run.device is '" + name + "' but this LibTorch sees no CUDA device; use cpu or auto");
  }
  return device;
}

namespace {
// Token ids of the task must index the model's embedding: a larger task
// vocabulary (an index.json with a larger vocab_size, --set data.vocab_size)
// would fail deep in the forward pass ("index out of range in self").
void check_vocabulary(const tasks::Task& task, int64_t model_vocab, const std::string& checkpoint) {
  if (task.vocab_size() <= model_vocab) return;
  std::string source = "the task's vocabulary (data.vocab_size)";
  if (const auto* text = dynamic_cast<const tasks::TextTask*>(&task)) {
    source = "the vocab_size of " + util::join_path(text->path(), data::kIndexFile);
  }
  throw config::ConfigError(source + " is " + std::to_string(task.vocab_size()) +
                            ", larger than the vocabulary of the model in " + checkpoint + " (" +
                            std::to_string(model_vocab) + "): its ids would fall outside the model's embedding; "
                            "use the data the checkpoint was trained on");
}
}  // namespace

RestoredRun restore_checkpoint(const std::string& path, const RestoreOptions& options) {
  RestoredRun run;
  run.meta = read_checkpoint_meta(path);
  if (!run.meta.contains("config") || !run.meta.at("config").is_string()) {
    throw CheckpointError("checkpoint " + path + " holds no config (it was written by an older bla-train); "
                          "it cannot be restored without one");
  }
  run.config = config::parse_config(run.meta.at("config").get<std::string>(), path, options.overrides);
  const auto stored_vocab = run.meta.find("vocab_size");
  run.vocab_size = stored_vocab != run.meta.end() && stored_vocab->is_number_integer() ? stored_vocab->get<int64_t>() : 0;
  const bool self_contained = run.vocab_size > 0 && run.meta.contains("seq_len") && run.meta.contains("tokenizer");
  try {
    run.task = tasks::make_task(*run.config.data, run.config.run.seed);
  } catch (const config::ConfigError& e) {
    if (!options.data_optional || !self_contained) throw;
    run.data_missing = e.what();
  }
  if (run.vocab_size <= 0) {
    run.vocab_size = run.config.model.vocab_size > 0 ? run.config.model.vocab_size : run.task->vocab_size();
  }
  if (run.task) check_vocabulary(*run.task, run.vocab_size, path);
  run.seq_len = run.task ? run.task->seq_len() : run.meta.at("seq_len").get<int64_t>();
  run.model = build_model(run.config, run.vocab_size, run.seq_len, /*data_read=*/run.task != nullptr);
  // The tokenizer the model was trained with: the checkpoint's record, else (older checkpoints) the data's.
  if (run.meta.contains("tokenizer")) {
    try {
      run.tokenizer = data::tokenizer_from_record(run.meta.at("tokenizer"), "checkpoint " + path);
    } catch (const std::runtime_error& e) {
      throw CheckpointError(e.what());
    }
  } else if (const auto* text = dynamic_cast<const tasks::TextTask*>(run.task.get())) {
    run.tokenizer = text->tokenizer();
  }
  // Overrides of model keys must leave the model as it was trained.
  load_checkpoint(path, *run.model, nullptr, model_config_yaml(run.config));
  run.device = resolve_device(run.config.run.device);
  run.model->to(run.device);
  run.model->eval();
  return run;
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

nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(yaml_to_json(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string text = node.Scalar();
      static const std::regex integer(R"([-+]?[0-9]+)");
      static const std::regex real(R"([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?)");
      if (node.Tag() == "!") return text;  // quoted in the file: a string
      if (std::regex_match(text, integer)) {
        try {
          return std::stoll(text);
        } catch (const std::out_of_range&) {
          return text;
        }
      }
      if (std::regex_match(text, real)) return std::stod(text);
      if (text == "true" || text == "True") return true;
      if (text == "false" || text == "False") return false;
      if (text == "~" || text == "null") return nullptr;
      return text;
    }
    default:
      return nullptr;
  }
}

nlohmann::json describe_architecture(const RestoredRun& run) {
  const auto& m = run.config.model;
  nlohmann::json out;
  out["format"] = "bla-train model 1";
  out["architecture"] =
      "decoder-only LM: token embedding; per layer x + mixer(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)) "
      "(mlp: none skips it); final RMSNorm; LM head (tied to the embedding when tie_embeddings)";
  out["vocab_size"] = run.vocab_size;
  out["d_model"] = m.d_model;
  out["layers"] = m.layers;
  out["heads"] = m.heads;
  out["mlp"] = m.mlp;
  out["mlp_ratio"] = m.mlp_ratio;
  out["short_conv"] = m.short_conv;
  out["norm_eps"] = m.norm_eps;
  out["tie_embeddings"] = m.tie_embeddings;
  out["max_seq_len"] = run.seq_len;
  nlohmann::json mixers = nlohmann::json::array();
  for (int64_t layer = 0; layer < run.model->num_layers(); ++layer) {
    const auto& spec = m.mixers.at(static_cast<size_t>(layer));
    mixers.push_back({{"layer", layer},
                      {"type", spec.type},
                      {"params", yaml_to_json(spec.params->resolved())},
                      {"describe", run.model->mixer(layer).describe()},
                      {"state_numel", run.model->state_numel(layer, run.seq_len)}});
  }
  out["layer_mixers"] = mixers;
  out["model_config"] = yaml_to_json(run.config.resolved["model"]);
  out["task"] = yaml_to_json(run.config.resolved["data"]);
  out["step"] = run.meta.value("step", int64_t{0});
  out["parameters"] = run.model->num_parameters();
  return out;
}

std::vector<int64_t> parse_token_ids(const std::string& text, int64_t vocab_size) {
  std::istringstream in(text);
  std::vector<int64_t> ids;
  for (std::string word; in >> word;) {
    size_t used = 0;
    int64_t id = -1;
    try {
      id = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size()) {
      throw std::invalid_argument("--prompt: '" + word +
                                  "' is not a token id; give white-space separated integers (text prompts need a "
                                  "checkpoint of data.task: text)");
    }
    if (id < 0 || id >= vocab_size) {
      throw std::invalid_argument("--prompt: token id " + word + " is outside the model's vocabulary [0, " +
                                  std::to_string(vocab_size) + ")");
    }
    ids.push_back(id);
  }
  if (ids.empty()) throw std::invalid_argument("--prompt: give at least one token id, e.g. --prompt \"1 2 3\"");
  return ids;
}

void SamplingOptions::validate() const {
  if (!(temperature >= 0) || !std::isfinite(temperature)) {
    std::ostringstream text;
    text << "--temperature (" << temperature << ") must be a finite number >= 0 (0: greedy)";
    throw std::invalid_argument(text.str());
  }
  if (top_k < 0) {
    throw std::invalid_argument("--top-k (" + std::to_string(top_k) + ") must be >= 0 (0: the whole vocabulary)");
  }
}

int64_t sample_token(const torch::Tensor& logits, const SamplingOptions& options, std::mt19937_64& rng) {
  auto row = logits.to(torch::kCPU, torch::kDouble).reshape({-1}).contiguous();
  if (options.temperature == 0) return row.argmax().item<int64_t>();
  const int64_t V = row.size(0);
  const double* x = row.data_ptr<double>();
  // Candidates by logit, larger first; equal logits by id, so top_k is deterministic.
  std::vector<int64_t> order(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) order[static_cast<size_t>(v)] = v;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x[a] > x[b]; });
  const int64_t k = options.top_k > 0 ? std::min(options.top_k, V) : V;
  std::vector<double> weights(static_cast<size_t>(k));
  const double top = x[order[0]];
  double total = 0;
  for (int64_t i = 0; i < k; ++i) {  // softmax(logits / T), shifted by the maximum for range
    weights[static_cast<size_t>(i)] = std::exp((x[order[static_cast<size_t>(i)]] - top) / options.temperature);
    total += weights[static_cast<size_t>(i)];
  }
  double u = std::uniform_real_distribution<double>(0.0, total)(rng);
  for (int64_t i = 0; i < k; ++i) {
    u -= weights[static_cast<size_t>(i)];
    if (u < 0) return order[static_cast<size_t>(i)];
  }
  return order[static_cast<size_t>(k - 1)];  // rounding at the very end of the range
}

DecodeResult decode(model::LanguageModelImpl& model, const std::vector<int64_t>& prompt, int64_t max_new_tokens,
                    const SamplingOptions& options, const torch::Device& device,
                    const std::function<void(int64_t)>& on_token) {
  using Clock = std::chrono::steady_clock;
  options.validate();
  if (prompt.empty()) throw std::invalid_argument("decode: the prompt is empty; give at least one token");
  if (max_new_tokens < 0) throw std::invalid_argument("--max-new-tokens must be >= 0");
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const auto dtype = model.parameters().front().scalar_type();
  auto state = model.initial_state(1, torch::TensorOptions().dtype(dtype).device(device));
  std::mt19937_64 rng(options.seed);
  auto feed = [&](int64_t token) {
    return model.step(torch::tensor({token}, torch::TensorOptions().dtype(torch::kLong).device(device)), state);
  };
  DecodeResult result;
  auto started = Clock::now();
  torch::Tensor logits;
  for (int64_t token : prompt) logits = feed(token);
  result.prefill_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  started = Clock::now();
  for (int64_t i = 0; i < max_new_tokens; ++i) {
    const int64_t token = sample_token(logits[0], options, rng);
    result.tokens.push_back(token);
    if (on_token) on_token(token);
    logits = feed(token);  // the state then covers every token, the last one included
  }
  result.decode_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  result.state_bytes = state.bytes();
  for (const auto& layer : state.layers) result.layer_bytes.push_back(layer.bytes());
  model.train(was_training);
  return result;
}

}  // namespace bla::train
