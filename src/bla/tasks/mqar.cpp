#include "bla/tasks/mqar.h"

#include "bla/config/section.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>

namespace bla::tasks {

namespace {

// k distinct integers from [lo, hi], uniformly, in random order: a partial
// Fisher-Yates shuffle of the pool lo..hi that keeps only the positions it
// has moved (at most 2k), so an example costs O(k^2), not the pool's size.
std::vector<int64_t> distinct(std::mt19937_64& rng, int64_t lo, int64_t hi, int64_t k) {
  std::vector<std::pair<int64_t, int64_t>> moved;  // (position, value) where the pool differs from lo + position
  auto at = [&](int64_t pos) {
    for (const auto& [p, v] : moved)
      if (p == pos) return v;
    return lo + pos;
  };
  auto set = [&](int64_t pos, int64_t value) {
    for (auto& [p, v] : moved)
      if (p == pos) {
        v = value;
        return;
      }
    moved.emplace_back(pos, value);
  };
  std::vector<int64_t> out(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) {
    std::uniform_int_distribution<int64_t> pick(i, hi - lo);
    const int64_t j = pick(rng), vi = at(i), vj = at(j);
    set(i, vj);
    set(j, vi);
    out[static_cast<size_t>(i)] = vj;
  }
  return out;
}

double uniform01(std::mt19937_64& rng) { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }
}  // namespace

void MqarOptions::validate() const {
  auto fail = [](const std::string& m) { throw std::invalid_argument("mqar: " + m); };
  if (seq_len < 4 || seq_len % 2 != 0) fail("seq_len (" + std::to_string(seq_len) + ") must be even and >= 4");
  if (vocab_size <= seq_len) {
    fail("vocab_size (" + std::to_string(vocab_size) + ") must be larger than seq_len (" + std::to_string(seq_len) + ")");
  }
  if (num_kv_pairs < 1 || 4 * num_kv_pairs > seq_len) {
    fail("num_kv_pairs (" + std::to_string(num_kv_pairs) + ") must be in [1, seq_len/4 = " + std::to_string(seq_len / 4) +
         "]: raise seq_len or lower num_kv_pairs");
  }
  if (num_kv_pairs > vocab_size / 2 - 1) {
    fail("num_kv_pairs (" + std::to_string(num_kv_pairs) + ") needs at least that many keys below vocab_size/2");
  }
  if (!(power_a > 0)) fail("power_a must be > 0");
}

MqarGenerator::MqarGenerator(MqarOptions options, uint64_t seed) : options_(std::move(options)), seed_(seed) {
  options_.validate();
  const int64_t space = (options_.seq_len - 2 * options_.num_kv_pairs) / 2;
  // w_g = a * g^(a-1), g = 1..space, normalised (docs/tasks.md, "MQAR", step 3).
  double total = 0;
  for (int64_t g = 1; g <= space; ++g) {
    gap_weights_.push_back(options_.power_a * std::pow(static_cast<double>(g), options_.power_a - 1.0));
    total += gap_weights_.back();
  }
  for (auto& w : gap_weights_) w /= total;
}

MqarExample MqarGenerator::example(Split split, int64_t index) const {
  const auto& o = options_;
  const int64_t P = o.num_kv_pairs, L = o.seq_len;
  std::mt19937_64 rng(example_seed(seed_, split, index));
  auto keys = distinct(rng, 1, o.vocab_size / 2 - 1, P);
  auto values = distinct(rng, o.vocab_size / 2, o.vocab_size - 1, P);

  // Gap indices: P draws without replacement, each proportional to the
  // remaining weights (numpy's choice(replace=False, p=w)).
  std::vector<double> weights = gap_weights_;
  std::vector<int64_t> gaps;
  for (int64_t p = 0; p < P; ++p) {
    double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    double u = uniform01(rng) * total, running = 0;
    size_t chosen = weights.size() - 1;
    for (size_t i = 0; i < weights.size(); ++i) {
      running += weights[i];
      if (weights[i] > 0 && u < running) {
        chosen = i;
        break;
      }
    }
    while (weights[chosen] == 0) --chosen;  // rounding at the very end of the range
    gaps.push_back(static_cast<int64_t>(chosen));
    weights[chosen] = 0;
  }

  // The full sequence has L + 1 tokens: context, then the query area.
  std::vector<int64_t> sequence(static_cast<size_t>(L + 1), 0);
  std::vector<int64_t> labels(static_cast<size_t>(L + 1), kIgnoreIndex);
  for (int64_t p = 0; p < P; ++p) {
    sequence[static_cast<size_t>(2 * p)] = keys[static_cast<size_t>(p)];
    sequence[static_cast<size_t>(2 * p + 1)] = values[static_cast<size_t>(p)];
    const int64_t at = 2 * P + 2 * gaps[static_cast<size_t>(p)];
    sequence[static_cast<size_t>(at)] = keys[static_cast<size_t>(p)];
    labels[static_cast<size_t>(at + 1)] = values[static_cast<size_t>(p)];
  }
  MqarExample example;
  example.inputs.assign(sequence.begin(), sequence.end() - 1);
  example.targets.assign(labels.begin() + 1, labels.end());
  if (o.random_non_queries) {
    std::uniform_int_distribution<int64_t> token(0, o.vocab_size - 1);
    for (auto& t : example.inputs) {
      if (t == 0) t = token(rng);
    }
  }
  return example;
}

int64_t MqarTask::num_examples(Split split) const {
  switch (split) {
    case Split::kTrain: return generator_.options().train_examples;
    case Split::kTest: return generator_.options().test_examples;
    default: return generator_.options().validation_examples;
  }
}

Batch MqarTask::batch(Split split, const std::vector<int64_t>& indices) const {
  const int64_t B = static_cast<int64_t>(indices.size()), L = seq_len();
  auto inputs = torch::empty({B, L}, torch::kLong);
  auto targets = torch::empty({B, L}, torch::kLong);
  auto in = inputs.accessor<int64_t, 2>();
  auto out = targets.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    auto ex = generator_.example(split, indices[static_cast<size_t>(b)]);
    for (int64_t t = 0; t < L; ++t) {
      in[b][t] = ex.inputs[static_cast<size_t>(t)];
      out[b][t] = ex.targets[static_cast<size_t>(t)];
    }
  }
  return {inputs, targets, {}};
}

namespace {
const config::Schema& mqar_schema() {
  const MqarOptions d;
  // The trainer keeps a permutation of the training examples (8 bytes each): at most 2 GiB of it.
  constexpr int64_t kMaxExamples = int64_t{1} << 28;
  static const config::Schema schema(
      "data (task: mqar)", "Multi-query associative recall as Zoology generates it (docs/tasks.md).",
      {config::integer_key("vocab_size", d.vocab_size, 3, 1 << 20, "tokens, keys and values drawn from it"),
       config::integer_key("seq_len", d.seq_len, 4, 1 << 20, "tokens per example"),
       config::integer_key("num_kv_pairs", d.num_kv_pairs, 1, 1 << 20, "key-value pairs per example"),
       config::real_key("power_a", d.power_a, 1e-9, 100, "power law of the gaps between a key and its query"),
       config::boolean_key("random_non_queries", d.random_non_queries,
                           "positions between queries hold random tokens (else 0)"),
       config::integer_key("train_examples", d.train_examples, 1, kMaxExamples, "training examples"),
       config::integer_key("test_examples", d.test_examples, 1, kMaxExamples, "test examples (reported only)"),
       config::integer_key("validation_examples", d.validation_examples, 0, kMaxExamples,
                           "a third stream of examples for model selection and early stopping (0: none)"),
       config::computed_default(
           config::integer_key("seed", 0, 0, INT64_MAX, "seeds the examples"), "run.seed")});
  return schema;
}

std::unique_ptr<Task> make_mqar(config::Section& data, uint64_t seed) {
  const config::Schema& keys = mqar_schema();
  MqarOptions o;
  o.vocab_size = data.integer(keys["vocab_size"]);
  o.seq_len = data.integer(keys["seq_len"]);
  o.num_kv_pairs = data.integer(keys["num_kv_pairs"]);
  o.power_a = data.real(keys["power_a"]);
  o.random_non_queries = data.boolean(keys["random_non_queries"]);
  o.train_examples = data.integer(keys["train_examples"]);
  o.test_examples = data.integer(keys["test_examples"]);
  o.validation_examples = data.integer(keys["validation_examples"]);
  seed = static_cast<uint64_t>(data.integer(keys["seed"], static_cast<int64_t>(seed)));
  try {
    o.validate();
  } catch (const std::invalid_argument& e) {
    // Messages read "mqar: <key> (...) must ...": point at that key.
    std::string message = std::string(e.what()).substr(6);
    data.fail(message.substr(0, message.find(' ')), message);
  }
  return std::make_unique<MqarTask>(o, seed);
}
const TaskRegistration kMqar("mqar", mqar_schema, make_mqar);
}  // namespace

}  // namespace bla::tasks

