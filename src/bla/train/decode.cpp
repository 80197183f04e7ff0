#include "bla/train/decode.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace bla::train {

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
