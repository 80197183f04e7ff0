// Decoding a model token by token with each mixer's recurrent state (what
// bla-generate runs): prompts of token ids, sampling, and the decode loop.
#pragma once

#include "bla/model/lm.h"

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace bla::train {


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
