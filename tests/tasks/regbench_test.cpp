#include "bla/config/config.h"
#include "bla/model/lm.h"
#include "bla/tasks/regbench.h"
#include "bla/train/evaluate.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>

using namespace bla::tasks;

namespace {

RegbenchOptions small() {
  RegbenchOptions o;
  o.train_automata = 300;
  o.test_automata = 60;
  o.validation_automata = 20;
  return o;
}

std::vector<int64_t> join(const std::vector<std::vector<int64_t>>& words, int64_t separator) {
  std::vector<int64_t> tokens;
  for (size_t w = 0; w < words.size(); ++w) {
    if (w > 0) tokens.push_back(separator);
    tokens.insert(tokens.end(), words[w].begin(), words[w].end());
  }
  return tokens;
}

TEST(RegBench, EveryWordIsAcceptedAndTheSequenceJoinsTheWords) {
  RegbenchGenerator gen(small(), 1);
  const auto& o = gen.options();
  for (Split split : {Split::kTrain, Split::kTest, Split::kValidation}) {
    for (int64_t i = 0; i < 20; ++i) {
      auto a = gen.automaton(split, i);
      auto ex = gen.example(split, i);
      for (const auto& word : ex.words) ASSERT_TRUE(a.accepts(word)) << "example " << i;
      auto tokens = join(ex.words, o.separator());
      ASSERT_LE(tokens.size(), static_cast<size_t>(o.seq_len + 1)) << "the default cap is never reached";
      EXPECT_EQ(ex.tokens, tokens);
      // allowed[t] lists the labels of the state reached on the current word's prefix.
      ASSERT_EQ(ex.allowed.size(), ex.tokens.size());
      int64_t state = 0;
      for (size_t t = 0; t < ex.tokens.size(); ++t) {
        state = ex.tokens[t] == o.separator() ? 0 : a.next(state, ex.tokens[t]);
        ASSERT_GE(state, 0);
        std::vector<int64_t> labels;
        for (const auto& e : a.edges[state]) labels.push_back(e.symbol);
        std::sort(labels.begin(), labels.end());
        EXPECT_EQ(ex.allowed[t], labels);
        if (t + 1 < ex.tokens.size() && ex.tokens[t + 1] != o.separator()) {
          EXPECT_TRUE(std::binary_search(labels.begin(), labels.end(), ex.tokens[t + 1])) << "the walk takes an edge";
        }
      }
    }
  }
}

// The draws of seq_icl's sampler (docs/tasks.md, "RegBench: the definition").
TEST(RegBench, AutomataAndWordsFollowTheReferenceRanges) {
  auto o = small();
  o.train_automata = 5000;
  o.test_automata = 250;
  o.validation_automata = 250;
  RegbenchGenerator gen(o, 0);
  std::set<int64_t> state_counts, alphabet_sizes, degrees, word_counts, word_lengths;
  double minimal_states = 0;
  for (int64_t i = 0; i < o.train_automata; ++i) {
    auto a = gen.drawn_automaton(Split::kTrain, i);
    ASSERT_GE(a.num_states, o.max_outgoing_edges);
    ASSERT_LE(a.num_states, o.max_num_nodes);
    state_counts.insert(a.num_states);
    std::set<int64_t> alphabet(a.alphabet.begin(), a.alphabet.end());
    ASSERT_EQ(alphabet.size(), a.alphabet.size()) << "distinct symbols";
    ASSERT_GE(*alphabet.begin(), 0);
    ASSERT_LT(*alphabet.rbegin(), o.num_symbols());
    alphabet_sizes.insert(static_cast<int64_t>(alphabet.size()));
    ASSERT_EQ(static_cast<int64_t>(a.edges.size()), a.num_states);
    for (int64_t state = 0; state < a.num_states; ++state) {
      const auto& out = a.edges[state];
      degrees.insert(static_cast<int64_t>(out.size()));
      std::set<int64_t> labels, targets;
      for (const auto& e : out) {
        ASSERT_TRUE(alphabet.count(e.symbol)) << "labels come from the alphabet";
        ASSERT_NE(e.target, state) << "no self-loops";
        ASSERT_GE(e.target, 0);
        ASSERT_LT(e.target, a.num_states);
        labels.insert(e.symbol);
        targets.insert(e.target);
      }
      ASSERT_EQ(labels.size(), out.size()) << "distinct labels per state";
      ASSERT_EQ(targets.size(), out.size()) << "distinct targets per state";
    }
    const auto m = gen.automaton(Split::kTrain, i);
    EXPECT_EQ(m.canonical(), a.canonical()) << "minimising keeps the language";
    EXPECT_LE(m.num_states, a.num_states);
    minimal_states += static_cast<double>(m.num_states);
    if (i < 400) {
      auto ex = gen.example(Split::kTrain, i);
      const int64_t k = static_cast<int64_t>(ex.words.size());
      ASSERT_GE(k, o.min_examples);
      ASSERT_LE(k, o.max_examples - 1);
      word_counts.insert(k);
      for (const auto& w : ex.words) {
        ASSERT_GE(w.size(), 1u);
        ASSERT_LE(static_cast<int64_t>(w.size()), o.max_word_len - 1);
        word_lengths.insert(static_cast<int64_t>(w.size()));
      }
    }
  }
  // Every value of each inclusive range is drawn: 4..12 states, 4..18
  // symbols, 1..3 edges, 10..19 words, 1..49 symbols per word.
  EXPECT_EQ(state_counts, (std::set<int64_t>{4, 5, 6, 7, 8, 9, 10, 11, 12}));
  EXPECT_EQ(static_cast<int64_t>(alphabet_sizes.size()), 15);
  EXPECT_EQ(*alphabet_sizes.begin(), 4);
  EXPECT_EQ(degrees, (std::set<int64_t>{1, 2, 3}));
  EXPECT_EQ(static_cast<int64_t>(word_counts.size()), o.max_examples - o.min_examples);
  EXPECT_EQ(static_cast<int64_t>(word_lengths.size()), o.max_word_len - 1);
  // The reference's automata have 6.9 states on average once minimised (a
  // port of seq_icl's sampler, 5,500 automata); the earlier generator's had 5.0.
  EXPECT_NEAR(minimal_states / static_cast<double>(o.train_automata), 6.9, 0.2);
}

TEST(RegBench, ExamplesAreDeterministicFromSeedSplitAndIndex) {
  RegbenchGenerator a(small(), 7), b(small(), 7), c(small(), 8);
  EXPECT_EQ(a.example(Split::kTrain, 5).tokens, b.example(Split::kTrain, 5).tokens);
  EXPECT_EQ(a.example(Split::kTest, 3).tokens, b.example(Split::kTest, 3).tokens);
  EXPECT_EQ(a.automaton(Split::kTest, 3).canonical(), b.automaton(Split::kTest, 3).canonical());
  EXPECT_NE(a.example(Split::kTrain, 5).tokens, a.example(Split::kTrain, 6).tokens);
  EXPECT_NE(a.example(Split::kTrain, 5).tokens, a.example(Split::kTest, 5).tokens);
  EXPECT_NE(a.example(Split::kTrain, 5).tokens, c.example(Split::kTrain, 5).tokens);
  RegbenchTask task(small(), 7);
  auto x = task.batch(Split::kTrain, {4, 1}), y = task.batch(Split::kTrain, {4, 1});
  EXPECT_TRUE(torch::equal(x.inputs, y.inputs));
  EXPECT_TRUE(torch::equal(x.extras.at("allowed"), y.extras.at("allowed")));
}

TEST(RegBench, CanonicalFormIdentifiesTheLanguage) {
  // (ab)* prefixes over symbols 3 and 5, written three ways.
  Automaton two;
  two.num_states = 2;
  two.alphabet = {3, 5};
  two.edges = {{{3, 1}}, {{5, 0}}};
  Automaton renamed;  // states 0 and 2 swapped around an unreachable state 1
  renamed.num_states = 3;
  renamed.alphabet = {3, 5, 7};
  renamed.edges = {{{3, 2}}, {{7, 1}}, {{5, 0}}};
  Automaton unrolled;  // four states that minimise to two
  unrolled.num_states = 4;
  unrolled.alphabet = {3, 5, 1, 2};
  unrolled.edges = {{{3, 1}}, {{5, 2}}, {{3, 3}}, {{5, 0}}};
  EXPECT_EQ(two.canonical(), "3>1,;5>0,;");
  EXPECT_EQ(renamed.canonical(), two.canonical());
  EXPECT_EQ(unrolled.canonical(), two.canonical());
  Automaton other = two;  // a b*: another language
  other.edges = {{{3, 1}}, {{5, 1}}};
  EXPECT_NE(other.canonical(), two.canonical());
  EXPECT_TRUE(two.accepts({3, 5, 3}));
  EXPECT_FALSE(two.accepts({3, 3}));
  EXPECT_TRUE(two.accepts({}));
}

TEST(RegBench, AutomataAreDistinctAcrossTrainTestAndValidation) {
  for (int64_t nodes : {12, 2}) {  // 2 (one edge per state): 324 languages, so repeats are drawn and must be rejected
    auto o = small();
    o.max_num_nodes = nodes;
    o.max_outgoing_edges = nodes == 2 ? 2 : o.max_outgoing_edges;
    o.train_automata = nodes == 2 ? 200 : o.train_automata;
    RegbenchGenerator gen(o, 3);
    std::set<std::string> forms;
    for (int64_t i = 0; i < o.train_automata; ++i) forms.insert(gen.automaton(Split::kTrain, i).canonical());
    ASSERT_EQ(static_cast<int64_t>(forms.size()), o.train_automata);
    for (int64_t i = 0; i < o.test_automata; ++i) {
      EXPECT_TRUE(forms.insert(gen.automaton(Split::kTest, i).canonical()).second) << "test automaton " << i;
    }
    for (int64_t i = 0; i < o.validation_automata; ++i) {
      EXPECT_TRUE(forms.insert(gen.automaton(Split::kValidation, i).canonical()).second) << "validation automaton " << i;
    }
  }
}

TEST(RegBench, TooFewLanguagesForTheCountsAreReported) {
  // With 2 states of one edge each (to the other state) over 18 symbols: a*
  // (18: both edges labelled a) and (ab)* (18 * 17) make 324 languages.
  auto o = small();
  o.max_num_nodes = 2;
  o.max_outgoing_edges = 2;
  o.train_automata = 1000;
  o.test_automata = 10;
  o.validation_automata = 0;
  try {
    RegbenchGenerator gen(o, 0);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "regbench: only 324 distinct automata in 21200 draws, but train_automata + test_automata + "
                 "validation_automata = 1010 are needed (max_num_nodes 2, max_outgoing_edges 2); raise max_num_nodes "
                 "or max_outgoing_edges, or lower the automata counts");
  }
}

TEST(RegBench, BatchesPadToTheLongestRow) {
  RegbenchTask task(small(), 4);
  const auto& o = task.generator().options();
  auto batch = task.batch(Split::kTest, {2, 7, 11});
  std::vector<RegbenchExample> examples;
  int64_t longest = 0;
  for (int64_t i : {2, 7, 11}) {
    examples.push_back(task.generator().example(Split::kTest, i));
    longest = std::max<int64_t>(longest, static_cast<int64_t>(examples.back().tokens.size()) - 1);
  }
  ASSERT_EQ(batch.inputs.sizes(), (std::vector<int64_t>{3, longest}));
  ASSERT_EQ(batch.extras.at("allowed").sizes(), (std::vector<int64_t>{3, longest, 20}));
  EXPECT_LE(longest, task.seq_len());
  for (int64_t b = 0; b < 3; ++b) {
    const auto& tokens = examples[b].tokens;
    for (int64_t t = 0; t < longest; ++t) {
      if (t + 1 < static_cast<int64_t>(tokens.size())) {
        EXPECT_EQ(batch.inputs[b][t].item<int64_t>(), tokens[t]);
        // Every next symbol is a target; the separator is not (seq_icl masks it).
        EXPECT_EQ(batch.targets[b][t].item<int64_t>(), tokens[t + 1] == o.separator() ? kIgnoreIndex : tokens[t + 1]);
        EXPECT_EQ(batch.extras.at("allowed")[b][t].sum().item<int64_t>(),
                  static_cast<int64_t>(examples[b].allowed[t].size()));
      } else {
        EXPECT_EQ(batch.inputs[b][t].item<int64_t>(), o.padding());
        EXPECT_EQ(batch.targets[b][t].item<int64_t>(), kIgnoreIndex);
        EXPECT_FALSE(batch.extras.at("allowed")[b][t].any().item<bool>());
      }
    }
  }
}

TEST(RegBench, SequencesAreCutToTheCap) {
  auto o = small();
  o.seq_len = 12;
  RegbenchTask task(o, 5);
  EXPECT_EQ(task.seq_len(), 12);
  auto ex = task.generator().example(Split::kTrain, 0);
  ASSERT_EQ(ex.tokens.size(), 13u);
  const auto joined = join(ex.words, o.separator());
  EXPECT_EQ(ex.tokens, std::vector<int64_t>(joined.begin(), joined.begin() + 13));
  EXPECT_EQ(task.batch(Split::kTrain, {0, 1}).inputs.size(1), 12);
  // Uncut, the longest input is 19 words of 49 symbols and 18 separators, less one.
  EXPECT_EQ(RegbenchTask(small(), 5).seq_len(), 19 * 49 + 18 - 1);
}

// vocab 5: symbols 0, 1, 2, separator 3, padding 4.
RegbenchTask tiny_vocab_task() {
  RegbenchOptions o;
  o.vocab_size = 5;
  o.max_num_nodes = 4;
  o.max_outgoing_edges = 3;
  o.train_automata = 5;
  o.test_automata = 5;
  o.validation_automata = 5;
  return RegbenchTask(o, 0);
}

Batch hand_made_batch() {
  Batch batch;
  batch.inputs = torch::tensor(std::vector<int64_t>{0, 1, 3, 0}).view({1, 4});
  // Positions 0 and 2 have symbol targets; 1 predicts the separator; 3 is padding.
  batch.targets = torch::tensor(std::vector<int64_t>{1, 3, 0, kIgnoreIndex}).view({1, 4});
  auto allowed = torch::zeros({1, 4, 5}, torch::kBool);
  allowed[0][0][0] = true;
  allowed[0][0][1] = true;
  allowed[0][1][2] = true;
  allowed[0][2][0] = true;
  batch.extras["allowed"] = allowed;
  return batch;
}

TEST(RegBench, MetricsOnHandMadeLogits) {
  auto task = tiny_vocab_task();
  auto batch = hand_made_batch();
  // One row per supervised position (0, 1, 2); logits = log p.
  auto p = torch::tensor({{0.4, 0.3, 0.1, 0.1, 0.1},    // argmax 0, allowed {0, 1}: correct; tvd 0.3
                          {0.9, 0.0, 0.0, 0.05, 0.05},  // separator target: not counted
                          {0.2, 0.5, 0.1, 0.1, 0.1}},   // argmax 1, allowed {0}: wrong; tvd 0.8
                         torch::kDouble);
  EvalTotals totals;
  task.score(batch, (p + 1e-30).log().to(torch::kFloat), totals);
  auto m = task.metrics(totals);
  EXPECT_DOUBLE_EQ(m.at("symbol_positions"), 2.0);
  EXPECT_DOUBLE_EQ(m.at("accuracy"), 0.5);
  EXPECT_NEAR(m.at("tvd"), (0.3 + 0.8) / 2, 1e-6);
  EXPECT_NEAR(m.at("tvd_seq_icl"), 2 * (0.3 + 0.8) / 2, 1e-6);  // seq_icl's number: the sum, no 1/2
  // A second batch accumulates: a model vocabulary of 6 whose extra id wins.
  auto wide = torch::tensor({{0.1, 0.1, 0.1, 0.1, 0.1, 0.5},  // argmax 5 is no symbol: wrong; tvd 0.8
                             {0.2, 0.2, 0.2, 0.2, 0.1, 0.1},
                             {0.6, 0.1, 0.1, 0.1, 0.05, 0.05}},  // correct; tvd 0.4
                            torch::kDouble);
  task.score(batch, wide.log().to(torch::kFloat), totals);
  m = task.metrics(totals);
  EXPECT_DOUBLE_EQ(m.at("symbol_positions"), 4.0);
  EXPECT_DOUBLE_EQ(m.at("accuracy"), 2.0 / 4.0);
  EXPECT_NEAR(m.at("tvd"), (0.3 + 0.8 + 0.8 + 0.4) / 4, 1e-6);
}

TEST(RegBench, EvaluateMatchesAPositionByPositionReference) {
  // The metrics through bla::train::evaluate (supervised rows only, batched,
  // padded) equal a direct loop over every position of every example.
  RegbenchOptions o;
  o.max_examples = 6;
  o.min_examples = 3;
  o.max_word_len = 12;
  o.train_automata = 8;
  o.test_automata = 7;
  o.validation_automata = 3;
  RegbenchTask task(o, 9);
  auto config = bla::config::parse_config("model: {d_model: 16, layers: 1, heads: 2, mixer: attention}\n"
                                          "data: {task: mqar}\ntrain: {steps: 1}\n", "eval.yaml");
  torch::manual_seed(0);
  bla::model::LanguageModel model(config.model, 20, task.seq_len());
  model->to(torch::kDouble);
  bla::train::EvalOptions options;
  options.batch_size = 3;
  auto metrics = bla::train::evaluate(*model, task, Split::kTest, torch::kCPU, options);

  torch::NoGradGuard no_grad;
  double correct = 0, tvd = 0, count = 0;
  for (int64_t i = 0; i < o.test_automata; ++i) {
    auto ex = task.generator().example(Split::kTest, i);
    if (ex.tokens.size() < 2) continue;
    auto inputs = torch::tensor(std::vector<int64_t>(ex.tokens.begin(), ex.tokens.end() - 1)).view({1, -1});
    auto probs = torch::softmax(model->forward(inputs)[0], -1);
    for (size_t t = 0; t + 1 < ex.tokens.size(); ++t) {
      if (ex.tokens[t + 1] == o.separator()) continue;
      const auto& allowed = ex.allowed[t];
      const int64_t predicted = probs[t].argmax().item<int64_t>();
      correct += std::count(allowed.begin(), allowed.end(), predicted);
      double distance = 0;
      for (int64_t v = 0; v < 20; ++v) {
        const double q = std::count(allowed.begin(), allowed.end(), v) / static_cast<double>(allowed.size());
        distance += std::abs(probs[t][v].item<double>() - q);
      }
      tvd += distance / 2;
      count += 1;
    }
  }
  ASSERT_GT(count, 20);
  EXPECT_DOUBLE_EQ(metrics.at("symbol_positions"), count);
  EXPECT_NEAR(metrics.at("accuracy"), correct / count, 1e-12);
  EXPECT_NEAR(metrics.at("tvd"), tvd / count, 1e-6);  // evaluate's logits are float32
}

void expect_rejected(const RegbenchOptions& o, const std::string& message) {
  try {
    o.validate();
    FAIL() << "expected: " << message;
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

TEST(RegBench, BadOptionsAreRejected) {
  auto o = small();
  o.max_num_nodes = 3;
  expect_rejected(o, "regbench: max_num_nodes (3) must be >= max_outgoing_edges (4): state counts are drawn from "
                     "max_outgoing_edges .. max_num_nodes");
  o = small();
  o.vocab_size = 5;
  expect_rejected(o, "regbench: vocab_size (5) must leave max_outgoing_edges = 4 symbols besides the separator and "
                     "the padding: alphabet sizes are drawn from max_outgoing_edges .. vocab_size - 2; raise vocab_size "
                     "to 6 or lower max_outgoing_edges");
  o = small();
  o.max_outgoing_edges = 1;
  expect_rejected(o, "regbench: max_outgoing_edges (1) must be >= 2: each state gets 1 .. max_outgoing_edges - 1 edges");
  o = small();
  o.max_examples = 10;
  expect_rejected(o, "regbench: max_examples (10) must be > min_examples (10): word counts are drawn from "
                     "min_examples .. max_examples - 1");
  o = small();
  o.max_word_len = 1;
  expect_rejected(o, "regbench: max_word_len (1) must be >= 2: word lengths are drawn from 1 .. max_word_len - 1");
}

TEST(RegBench, ConfigErrorsNameTheKeyAndLine) {
  auto config = bla::config::parse_config(
      "model: {mixer: attention}\ntrain: {steps: 1}\ndata:\n  task: regbench\n  min_examples: 5\n  max_examples: 5\n", "rb.yaml");
  try {
    make_task(*config.data, 0);
    FAIL() << "expected a config error";
  } catch (const bla::config::ConfigError& e) {
    EXPECT_STREQ(e.what(), "rb.yaml, line 6: data.max_examples: max_examples (5) must be > min_examples (5): word counts "
                           "are drawn from min_examples .. max_examples - 1");
  }
  auto typo = bla::config::parse_config(
      "model: {mixer: attention}\ntrain: {steps: 1}\ndata: {task: regbench, max_num_node: 5, train_automata: 3, test_automata: 3}\n",
                                        "rb.yaml");
  auto task = make_task(*typo.data, 0);
  EXPECT_EQ(task->name(), "regbench");
  EXPECT_THROW(typo.data->finish(), bla::config::ConfigError) << "unknown keys are rejected";
}

}  // namespace
