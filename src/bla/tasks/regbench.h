// RegBench: in-context learning of regular languages, the task of the RegBench
// paper ("In-Context Language Learning: Architectures and Algorithms"),
// generated as its reference code (berlino/seq_icl) generates it; see
// docs/tasks.md "RegBench". Each sequence is a set of words from one random
// probabilistic automaton, joined by a separator; the model must infer the
// automaton in context to predict the next symbol.
//
// Token ids: symbols are 0 .. vocab_size - 3, the separator "|" is
// vocab_size - 2 and the padding "." is vocab_size - 1 (never supervised).
#pragma once

#include "bla/tasks/task.h"

#include <cstdint>
#include <string>
#include <vector>

namespace bla::tasks {

struct RegbenchOptions {
  int64_t vocab_size = 20;  // symbols + separator + padding
  int64_t max_num_nodes = 12;      // states drawn from max_outgoing_edges .. max_num_nodes
  int64_t max_outgoing_edges = 4;  // edges per state drawn from 1 .. max_outgoing_edges - 1
  int64_t min_examples = 10;       // words drawn from min_examples .. max_examples - 1
  int64_t max_examples = 20;
  int64_t max_word_len = 50;       // word lengths drawn from 1 .. max_word_len - 1
  int64_t train_automata = 5000;
  int64_t test_automata = 250;
  int64_t validation_automata = 250;
  // The most input tokens of one row: the token sequence is cut to
  // seq_len + 1 tokens (inputs are all but its last token, targets all but
  // its first), as MQAR's seq_len is the model's input length.
  int64_t seq_len = 4096;

  int64_t num_symbols() const { return vocab_size - 2; }
  int64_t separator() const { return vocab_size - 2; }
  int64_t padding() const { return vocab_size - 1; }
  // Throws std::invalid_argument ("regbench: <key> (...) ...") when impossible.
  void validate() const;
};

// A deterministic automaton whose states all accept; a missing edge rejects.
// The probabilistic automaton walks uniformly among the current state's edges.
struct Automaton {
  struct Edge {
    int64_t symbol;
    int64_t target;
  };
  int64_t num_states = 0;
  std::vector<int64_t> alphabet;         // the n symbols drawn for this automaton
  std::vector<std::vector<Edge>> edges;  // per state, distinct labels

  // The state reached from `state` on `symbol`, or -1 when there is no such edge.
  int64_t next(int64_t state, int64_t symbol) const;
  // Whether the automaton, started in state 0, reads the whole word.
  bool accepts(const std::vector<int64_t>& word) const;
  // The minimal automaton of the same language: the reachable part, equivalent
  // states merged (all accept, so states merge when the same labels lead to
  // equivalent states), states numbered breadth-first from the start, edges
  // by symbol. Walks on it give the same word distribution.
  Automaton minimal() const;
  // A description equal for two automata exactly when they define the same
  // probabilistic language: the minimal automaton's edges as text.
  std::string canonical() const;
};

struct RegbenchExample {
  std::vector<std::vector<int64_t>> words;  // before cutting to the cap
  std::vector<int64_t> tokens;              // words joined by the separator, cut to seq_len + 1
  // allowed[t]: the symbols the automaton allows after reading tokens[0..t]
  // within the current word (the labels of the current state's edges).
  std::vector<std::vector<int64_t>> allowed;
};

class RegbenchGenerator {
 public:
  // Samples train_automata + test_automata + validation_automata pairwise
  // distinct automata (by canonical form) up front; only their seeds are kept.
  RegbenchGenerator(RegbenchOptions options, uint64_t seed);
  // The automaton of an example, minimised (as the reference samples from).
  Automaton automaton(Split split, int64_t index) const;
  // As drawn, before minimisation.
  Automaton drawn_automaton(Split split, int64_t index) const;
  RegbenchExample example(Split split, int64_t index) const;
  const RegbenchOptions& options() const { return options_; }
  // The automata (one example each) of a split.
  int64_t num_automata(Split split) const { return static_cast<int64_t>(seeds_of(split).size()); }
  // The longest input row any example can have: min(seq_len, longest sequence - 1).
  int64_t max_input_len() const;

 private:
  Automaton sample_automaton(uint64_t seed) const;
  RegbenchOptions options_;
  uint64_t seed_;
  const std::vector<uint64_t>& seeds_of(Split split) const;
  std::vector<uint64_t> train_seeds_, test_seeds_, validation_seeds_;  // the accepted draw of each automaton
};

// Batches pad every row to the batch's longest row with the padding token.
// Targets that are the separator or padding are kIgnoreIndex (not trained on,
// as in the reference). Batch.extras["allowed"] is a (B, L, vocab) bool mask
// of the symbols the automaton allows at each position.
//
// Metrics count the positions whose target is a symbol, as docs/tasks.md
// says: the automaton's distribution there is uniform over the current
// state's edges.
//   accuracy:   argmax of the logits is a symbol the automaton allows;
//   tvd:        0.5 * sum_v |softmax(logits)_v - q_v|, q uniform over the
//               allowed symbols (zero elsewhere, separator and padding included);
//   tvd_seq_icl: sum_v |softmax(logits)_v - q_v| (no 1/2), the number
//               seq_icl reports under the name tvd.
class RegbenchTask : public Task {
 public:
  RegbenchTask(RegbenchOptions options, uint64_t seed) : generator_(std::move(options), seed) {}
  std::string name() const override { return "regbench"; }
  int64_t vocab_size() const override { return generator_.options().vocab_size; }
  int64_t seq_len() const override { return generator_.max_input_len(); }
  int64_t num_examples(Split split) const override;
  Batch batch(Split split, const std::vector<int64_t>& indices) const override;
  void score(const Batch& batch, const at::Tensor& logits, EvalTotals& totals) const override;
  std::map<std::string, double> metrics(const EvalTotals& totals) const override;
  const RegbenchGenerator& generator() const { return generator_; }

 private:
  RegbenchGenerator generator_;
};

}  // namespace bla::tasks
