#include "bla/train/restore.h"

#include "bla/data/shards.h"
#include "bla/data/tokenizer_record.h"
#include "bla/tasks/text.h"
#include "bla/train/checkpoint.h"
#include "bla/train/task_and_model.h"
#include "bla/util/files.h"

#include <torch/torch.h>

#include <cmath>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace bla::train {

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

}  // namespace bla::train
