#include "bla/tasks/regbench_ngram.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace bla::tasks {

std::vector<double> ngram_distribution(const std::vector<int64_t>& tokens, int64_t t, int64_t n, int64_t num_symbols) {
  if (n < 1) throw std::invalid_argument("ngram_distribution: order " + std::to_string(n) + " must be >= 1");
  std::vector<double> counts(static_cast<size_t>(num_symbols), 0.0);
  for (int64_t k = std::min(n - 1, t + 1); k >= 0; --k) {  // history length, backing off
    double total = 0;
    // Earlier positions s whose k tokens before s equal the k tokens ending at t.
    for (int64_t s = k; s <= t; ++s) {
      const int64_t next = tokens[static_cast<size_t>(s)];
      if (next < 0 || next >= num_symbols) continue;
      bool match = true;
      for (int64_t j = 1; j <= k && match; ++j) {
        match = tokens[static_cast<size_t>(s - j)] == tokens[static_cast<size_t>(t + 1 - j)];
      }
      if (match) {
        counts[static_cast<size_t>(next)] += 1;
        total += 1;
      }
    }
    if (total > 0) {
      for (auto& c : counts) c /= total;
      return counts;
    }
  }
  return std::vector<double>(static_cast<size_t>(num_symbols), 1.0 / static_cast<double>(num_symbols));
}

std::map<std::string, double> ngram_metrics(const RegbenchGenerator& generator, Split split, int64_t n,
                                            int64_t max_examples) {
  const auto& o = generator.options();
  const int64_t available = generator.num_automata(split);
  const int64_t examples = max_examples > 0 ? std::min(max_examples, available) : available;
  double positions = 0, correct = 0, l1 = 0;
  for (int64_t i = 0; i < examples; ++i) {
    const auto ex = generator.example(split, i);
    for (int64_t t = 0; t + 1 < static_cast<int64_t>(ex.tokens.size()); ++t) {
      if (ex.tokens[static_cast<size_t>(t + 1)] >= o.num_symbols()) continue;  // a separator: not scored
      const auto p = ngram_distribution(ex.tokens, t, n, o.num_symbols());
      const auto& allowed = ex.allowed[static_cast<size_t>(t)];
      const int64_t predicted = std::max_element(p.begin(), p.end()) - p.begin();  // the first of ties
      correct += std::count(allowed.begin(), allowed.end(), predicted) > 0 ? 1 : 0;
      double distance = 0;
      for (int64_t v = 0; v < o.vocab_size; ++v) {  // separator and padding: p = q = 0
        const double q = std::count(allowed.begin(), allowed.end(), v) / static_cast<double>(allowed.size());
        distance += std::abs((v < o.num_symbols() ? p[static_cast<size_t>(v)] : 0.0) - q);
      }
      l1 += distance;
      positions += 1;
    }
  }
  const double m = std::max(positions, 1.0);
  return {{"accuracy", correct / m}, {"tvd", 0.5 * l1 / m}, {"tvd_seq_icl", l1 / m}, {"symbol_positions", positions}};
}

}  // namespace bla::tasks
