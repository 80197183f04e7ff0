// What the commands that start from a checkpoint share (bla-eval,
// bla-generate, bla-export): rebuilding the model and the task from the
// resolved config stored in the checkpoint, and describing what was restored.
// Decoding a restored model is train/decode.h.
#pragma once

#include "bla/config/config.h"
#include "bla/model/lm.h"
#include "bla/data/tokenizer.h"
#include "bla/tasks/task.h"
#include "bla/train/task_and_model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bla::train {

struct RestoreOptions {
  // --set overrides applied to the stored config (e.g. data.test_automata=100,
  // run.device=cpu). Model keys must keep the architecture of the weights.
  std::vector<std::string> overrides;
  // Where the task's data is gone (a text model's data folder), restore the
  // model anyway from what the checkpoint records (vocabulary, sequence
  // length, tokenizer); `task` is then null.
  bool data_optional = false;
};

struct RestoredRun {
  config::Config config;  // the stored resolved config, overrides applied
  nlohmann::json meta;    // the checkpoint's meta (step, data position, ...)
  std::unique_ptr<tasks::Task> task;   // null when data_optional and the data is gone
  std::string data_missing;             // then: why the task could not be built
  // Text: the tokenizer of the task's data, else the one the checkpoint
  // records; null for tasks without one (MQAR, RegBench).
  std::unique_ptr<data::Tokenizer> tokenizer;
  model::LanguageModel model{nullptr};  // weights loaded, on `device`, in eval mode
  int64_t vocab_size = 0;
  int64_t seq_len = 0;  // the task's, or the checkpoint's record of it
  torch::Device device{torch::kCPU};
};

// Reads the checkpoint's meta, parses meta["config"] (messages name the
// checkpoint), builds task and model as the trainer did, and loads the
// weights (no optimizer). Throws config::ConfigError or CheckpointError.
RestoredRun restore_checkpoint(const std::string& path, const RestoreOptions& options = {});

// The architecture as JSON: model section (resolved), vocabulary, the mixer
// of each layer, and the task it was trained on. bla-export's config.json.
nlohmann::json describe_architecture(const RestoredRun& run);

// A YAML tree as JSON: maps and sequences kept, scalars typed (integers,
// reals, booleans and null recognised; anything else a string).
nlohmann::json yaml_to_json(const YAML::Node& node);

}  // namespace bla::train
