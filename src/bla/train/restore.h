// What the commands that start from a checkpoint share (bla-eval,
// bla-generate, bla-export): rebuilding the model and the task from the
// resolved config stored in the checkpoint, and decoding a restored model
// token by token with each mixer's recurrent state.
#pragma once

#include "bla/config/config.h"
#include "bla/model/lm.h"
#include "bla/data/tokenizer.h"
#include "bla/tasks/task.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace bla::train {

// The device a run.device value names: "auto" is CUDA when LibTorch sees one.
torch::Device resolve_device(const std::string& name);

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

// Per layer: mixer description and state size after `context` tokens (the
// run summary's "state" entry).
nlohmann::json state_summary(const model::LanguageModelImpl& model, int64_t context);

// The architecture as JSON: model section (resolved), vocabulary, the mixer
// of each layer, and the task it was trained on. bla-export's config.json.
nlohmann::json describe_architecture(const RestoredRun& run);

// A YAML tree as JSON: maps and sequences kept, scalars typed (integers,
// reals, booleans and null recognised; anything else a string).
nlohmann::json yaml_to_json(const YAML::Node& node);

// ---- Decoding ----

// "3 17 5" -> {3, 17, 5}: token ids separated by white space, each in
// [0, vocab_size): the prompts of tasks without text (text tasks tokenise
// the prompt, tasks/text.h). Throws std::invalid_argument naming the bad entry.
std::vector<int64_t> parse_token_ids(const std::string& text, int64_t vocab_size);

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (argmax)
  int64_t top_k = 0;         // 0: the whole vocabulary
  uint64_t seed = 0;
  void validate() const;     // throws std::invalid_argument
};

// The next token from one row of logits (vocab,): argmax when temperature is
// 0, else a draw from softmax(logits / temperature) restricted to the top_k
// largest logits (ties at the k-th value broken by the lower id).
int64_t sample_token(const torch::Tensor& logits, const SamplingOptions& options, std::mt19937_64& rng);

struct DecodeResult {
  std::vector<int64_t> tokens;           // the new tokens
  int64_t state_bytes = 0;               // DecodeState::bytes() after prompt and new tokens
  std::vector<int64_t> layer_bytes;      // per layer
  double prefill_seconds = 0, decode_seconds = 0;
};

// Feeds the prompt through LanguageModelImpl::step one token at a time (so
// each mixer builds its recurrent state: attention its KV cache, BLA its
// slots), then samples max_new_tokens tokens, calling on_token for each as
// soon as it is chosen. Batch 1, the model's dtype, no gradients.
DecodeResult decode(model::LanguageModelImpl& model, const std::vector<int64_t>& prompt, int64_t max_new_tokens,
                    const SamplingOptions& options, const torch::Device& device,
                    const std::function<void(int64_t)>& on_token = {});

}  // namespace bla::train
