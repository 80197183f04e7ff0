#include "bla/tasks/regbench.h"

#include "bla/config/section.h"
#include "bla/util/checksum.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <stdexcept>
#include <unordered_set>

namespace bla::tasks {

namespace {

// Seed streams of the automata, apart from the example streams of seed.h, so
// the automata of train and test are drawn independently of the words.
constexpr uint64_t kTrainAutomata = 0x72627472;  // "rbtr"
constexpr uint64_t kTestAutomata = 0x72627465;   // "rbte"
constexpr uint64_t kValidationAutomata = 0x72627661;  // "rbva"

int64_t uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {  // inclusive
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// The first k of `pool` after a partial Fisher-Yates shuffle: k distinct
// elements, uniformly, in random order.
std::vector<int64_t> choose(std::mt19937_64& rng, std::vector<int64_t> pool, int64_t k) {
  for (int64_t i = 0; i < k; ++i) {
    std::swap(pool[static_cast<size_t>(i)], pool[static_cast<size_t>(uniform(rng, i, static_cast<int64_t>(pool.size()) - 1))]);
  }
  pool.resize(static_cast<size_t>(k));
  return pool;
}

std::string str(int64_t v) { return std::to_string(v); }
}  // namespace

void RegbenchOptions::validate() const {
  auto fail = [](const std::string& m) { throw std::invalid_argument("regbench: " + m); };
  if (max_outgoing_edges < 2) {
    fail("max_outgoing_edges (" + str(max_outgoing_edges) +
         ") must be >= 2: each state gets 1 .. max_outgoing_edges - 1 edges");
  }
  if (max_num_nodes < max_outgoing_edges) {
    fail("max_num_nodes (" + str(max_num_nodes) + ") must be >= max_outgoing_edges (" + str(max_outgoing_edges) +
         "): state counts are drawn from max_outgoing_edges .. max_num_nodes");
  }
  if (num_symbols() < max_outgoing_edges) {
    fail("vocab_size (" + str(vocab_size) + ") must leave max_outgoing_edges = " + str(max_outgoing_edges) +
         " symbols besides the separator and the padding: alphabet sizes are drawn from max_outgoing_edges .. "
         "vocab_size - 2; raise vocab_size to " + str(max_outgoing_edges + 2) + " or lower max_outgoing_edges");
  }
  if (min_examples < 1) fail("min_examples (" + str(min_examples) + ") must be >= 1");
  if (max_examples <= min_examples) {
    fail("max_examples (" + str(max_examples) + ") must be > min_examples (" + str(min_examples) +
         "): word counts are drawn from min_examples .. max_examples - 1");
  }
  if (max_word_len < 2) {
    fail("max_word_len (" + str(max_word_len) + ") must be >= 2: word lengths are drawn from 1 .. max_word_len - 1");
  }
  if (train_automata < 1) fail("train_automata (" + str(train_automata) + ") must be >= 1");
  if (test_automata < 1) fail("test_automata (" + str(test_automata) + ") must be >= 1");
  if (validation_automata < 0) fail("validation_automata (" + str(validation_automata) + ") must be >= 0");
  if (seq_len < 1) fail("seq_len (" + str(seq_len) + ") must be >= 1");
}

int64_t Automaton::next(int64_t state, int64_t symbol) const {
  for (const auto& edge : edges[static_cast<size_t>(state)]) {
    if (edge.symbol == symbol) return edge.target;
  }
  return -1;
}

bool Automaton::accepts(const std::vector<int64_t>& word) const {
  int64_t state = 0;
  for (int64_t symbol : word) {
    state = next(state, symbol);
    if (state < 0) return false;
  }
  return true;  // every state accepts
}

Automaton Automaton::minimal() const {
  // Reachable states from the start.
  std::vector<int64_t> reachable{0};
  std::vector<bool> seen(static_cast<size_t>(num_states), false);
  seen[0] = true;
  for (size_t i = 0; i < reachable.size(); ++i) {
    for (const auto& edge : edges[static_cast<size_t>(reachable[i])]) {
      if (!seen[static_cast<size_t>(edge.target)]) {
        seen[static_cast<size_t>(edge.target)] = true;
        reachable.push_back(edge.target);
      }
    }
  }
  // Moore's partition refinement. All states accept, so they start in one
  // block; two states stay together while they have the same labels and
  // their edges lead to the same blocks.
  std::vector<int64_t> block(static_cast<size_t>(num_states), 0);
  size_t blocks = 1;
  while (true) {
    std::map<std::vector<int64_t>, int64_t> ids;
    std::vector<int64_t> refined(block.size(), 0);
    for (int64_t s : reachable) {
      std::vector<std::pair<int64_t, int64_t>> out;
      for (const auto& edge : edges[static_cast<size_t>(s)]) out.emplace_back(edge.symbol, block[static_cast<size_t>(edge.target)]);
      std::sort(out.begin(), out.end());
      std::vector<int64_t> signature{block[static_cast<size_t>(s)]};
      for (const auto& [symbol, target] : out) {
        signature.push_back(symbol);
        signature.push_back(target);
      }
      refined[static_cast<size_t>(s)] = ids.emplace(signature, static_cast<int64_t>(ids.size())).first->second;
    }
    block = refined;
    if (ids.size() == blocks) break;  // refinement only splits: same count means stable
    blocks = ids.size();
  }
  // Number the blocks in breadth-first order from the start, edges by symbol.
  std::vector<int64_t> number(blocks, -1), representative;
  number[static_cast<size_t>(block[0])] = 0;
  representative.push_back(0);
  Automaton m;
  m.alphabet = alphabet;
  for (size_t i = 0; i < representative.size(); ++i) {
    auto out = edges[static_cast<size_t>(representative[i])];
    std::sort(out.begin(), out.end(), [](const Edge& a, const Edge& b) { return a.symbol < b.symbol; });
    std::vector<Edge> merged;
    for (const auto& edge : out) {
      auto& n = number[static_cast<size_t>(block[static_cast<size_t>(edge.target)])];
      if (n < 0) {
        n = static_cast<int64_t>(representative.size());
        representative.push_back(edge.target);
      }
      merged.push_back({edge.symbol, n});
    }
    m.edges.push_back(std::move(merged));
  }
  m.num_states = static_cast<int64_t>(m.edges.size());
  return m;
}

std::string Automaton::canonical() const {
  std::string text;
  for (const auto& out : minimal().edges) {
    for (const auto& edge : out) text += str(edge.symbol) + ">" + str(edge.target) + ",";
    text += ";";
  }
  return text;
}

RegbenchGenerator::RegbenchGenerator(RegbenchOptions options, uint64_t seed) : options_(std::move(options)), seed_(seed) {
  options_.validate();
  // Rejection sampling: a draw whose canonical form was seen before (in
  // either split) is skipped, so every automaton of train and test defines
  // a different language. Hashes stand for the forms: a collision could only
  // reject a new automaton, never admit a repeat.
  const int64_t wanted = options_.train_automata + options_.test_automata + options_.validation_automata;
  const int64_t max_draws = 20 * wanted + 1000;
  std::unordered_set<uint64_t> seen;
  int64_t draws = 0;
  auto fill = [&](std::vector<uint64_t>& seeds, int64_t count, uint64_t stream) {
    for (uint64_t attempt = 0; static_cast<int64_t>(seeds.size()) < count; ++attempt) {
      if (++draws > max_draws) {
        throw std::invalid_argument(
            "regbench: only " + str(static_cast<int64_t>(seen.size())) + " distinct automata in " + str(max_draws) +
            " draws, but train_automata + test_automata + validation_automata = " + str(wanted) +
            " are needed (max_num_nodes " + str(options_.max_num_nodes) + ", max_outgoing_edges " +
            str(options_.max_outgoing_edges) + "); raise max_num_nodes or max_outgoing_edges, or lower the automata counts");
      }
      const uint64_t draw_seed = util::derive_seed(seed_, stream, attempt);
      if (seen.insert(util::fnv1a64(sample_automaton(draw_seed).canonical())).second) seeds.push_back(draw_seed);
    }
  };
  fill(train_seeds_, options_.train_automata, kTrainAutomata);
  fill(test_seeds_, options_.test_automata, kTestAutomata);
  fill(validation_seeds_, options_.validation_automata, kValidationAutomata);
}

// As seq_icl draws one (src/dataloaders/dfa.py): the state count and the
// alphabet size independently, then per state 1 .. max_outgoing_edges - 1
// edges with distinct labels to distinct other states.
Automaton RegbenchGenerator::sample_automaton(uint64_t seed) const {
  const auto& o = options_;
  std::mt19937_64 rng(seed);
  Automaton a;
  a.num_states = uniform(rng, o.max_outgoing_edges, o.max_num_nodes);
  std::vector<int64_t> symbols(static_cast<size_t>(o.num_symbols()));
  std::iota(symbols.begin(), symbols.end(), 0);
  a.alphabet = choose(rng, symbols, uniform(rng, o.max_outgoing_edges, o.num_symbols()));
  a.edges.resize(static_cast<size_t>(a.num_states));
  for (int64_t state = 0; state < a.num_states; ++state) {
    const int64_t t = uniform(rng, 1, o.max_outgoing_edges - 1);
    std::vector<int64_t> others;
    for (int64_t s = 0; s < a.num_states; ++s) {
      if (s != state) others.push_back(s);
    }
    const auto labels = choose(rng, a.alphabet, t);
    const auto targets = choose(rng, others, t);
    for (int64_t i = 0; i < t; ++i) a.edges[static_cast<size_t>(state)].push_back({labels[i], targets[i]});
  }
  return a;
}

const std::vector<uint64_t>& RegbenchGenerator::seeds_of(Split split) const {
  return split == Split::kTrain ? train_seeds_ : split == Split::kTest ? test_seeds_ : validation_seeds_;
}

Automaton RegbenchGenerator::drawn_automaton(Split split, int64_t index) const {
  return sample_automaton(seeds_of(split).at(static_cast<size_t>(index)));
}

Automaton RegbenchGenerator::automaton(Split split, int64_t index) const { return drawn_automaton(split, index).minimal(); }

RegbenchExample RegbenchGenerator::example(Split split, int64_t index) const {
  const auto& o = options_;
  const Automaton a = automaton(split, index);
  std::mt19937_64 rng(example_seed(seed_, split, index));
  RegbenchExample ex;
  const int64_t k = uniform(rng, o.min_examples, o.max_examples - 1);
  for (int64_t w = 0; w < k; ++w) {
    const int64_t length = uniform(rng, 1, o.max_word_len - 1);
    std::vector<int64_t> word;
    int64_t state = 0;
    for (int64_t i = 0; i < length; ++i) {  // a uniform random walk from the start
      const auto& out = a.edges[static_cast<size_t>(state)];
      const auto& edge = out[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(out.size()) - 1))];
      word.push_back(edge.symbol);
      state = edge.target;
    }
    ex.words.push_back(std::move(word));
  }
  for (size_t w = 0; w < ex.words.size(); ++w) {
    if (w > 0) ex.tokens.push_back(o.separator());
    ex.tokens.insert(ex.tokens.end(), ex.words[w].begin(), ex.words[w].end());
  }
  if (static_cast<int64_t>(ex.tokens.size()) > o.seq_len + 1) ex.tokens.resize(static_cast<size_t>(o.seq_len + 1));
  // The automaton run on the current word's prefix after each token.
  int64_t state = 0;
  for (int64_t token : ex.tokens) {
    state = token == o.separator() ? 0 : a.next(state, token);
    std::vector<int64_t> allowed;
    for (const auto& edge : a.edges[static_cast<size_t>(state)]) allowed.push_back(edge.symbol);
    std::sort(allowed.begin(), allowed.end());
    ex.allowed.push_back(std::move(allowed));
  }
  return ex;
}

int64_t RegbenchGenerator::max_input_len() const {
  const auto& o = options_;
  // The longest sequence: max_examples - 1 words of max_word_len - 1 symbols
  // and the separators between them; inputs are one token shorter.
  const int64_t longest = (o.max_examples - 1) * (o.max_word_len - 1) + std::max<int64_t>(o.max_examples - 2, 0);
  return std::max<int64_t>(1, std::min(o.seq_len, longest - 1));
}

int64_t RegbenchTask::num_examples(Split split) const { return generator_.num_automata(split); }

Batch RegbenchTask::batch(Split split, const std::vector<int64_t>& indices) const {
  const auto& o = generator_.options();
  const int64_t B = static_cast<int64_t>(indices.size()), V = o.vocab_size;
  std::vector<RegbenchExample> examples;
  int64_t L = 1;
  for (int64_t index : indices) {
    examples.push_back(generator_.example(split, index));
    L = std::max<int64_t>(L, static_cast<int64_t>(examples.back().tokens.size()) - 1);
  }
  auto inputs = torch::full({B, L}, o.padding(), torch::kLong);
  auto targets = torch::full({B, L}, kIgnoreIndex, torch::kLong);
  auto allowed = torch::zeros({B, L, V}, torch::kBool);
  auto in = inputs.accessor<int64_t, 2>();
  auto out = targets.accessor<int64_t, 2>();
  auto ok = allowed.accessor<bool, 3>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& ex = examples[static_cast<size_t>(b)];
    for (int64_t t = 0; t + 1 < static_cast<int64_t>(ex.tokens.size()); ++t) {
      in[b][t] = ex.tokens[static_cast<size_t>(t)];
      const int64_t next = ex.tokens[static_cast<size_t>(t + 1)];
      if (next != o.separator()) out[b][t] = next;  // the separator is not a target (seq_icl masks it)
      for (int64_t symbol : ex.allowed[static_cast<size_t>(t)]) ok[b][t][symbol] = true;
    }
  }
  return {inputs, targets, {{"allowed", allowed}}};
}

void RegbenchTask::score(const Batch& batch, const at::Tensor& logits, EvalTotals& totals) const {
  const auto& o = generator_.options();
  auto supervised = batch.targets.ne(kIgnoreIndex);
  auto targets = batch.targets.masked_select(supervised);            // (N,)
  auto allowed = batch.extras.at("allowed").index({supervised});     // (N, vocab)
  auto symbol = targets.lt(o.num_symbols());                         // the rows that count
  auto rows = logits.to(torch::kCPU, torch::kDouble).index({symbol});  // (M, model vocab)
  auto mask = allowed.index({symbol});
  if (rows.size(1) > mask.size(1)) {  // a model vocabulary larger than the task's: extra ids are never allowed
    mask = torch::cat({mask, torch::zeros({mask.size(0), rows.size(1) - mask.size(1)}, torch::kBool)}, 1);
  }
  auto predicted = rows.argmax(-1, /*keepdim=*/true);
  const double correct = mask.gather(1, predicted).sum().item<double>();
  auto q = mask.to(torch::kDouble);
  q = q / q.sum(-1, /*keepdim=*/true);
  const double l1 = (torch::softmax(rows, -1) - q).abs().sum(-1).sum().item<double>();
  totals.add("symbol_positions", static_cast<double>(rows.size(0)));
  totals.add("allowed_correct", correct);
  totals.add("l1_sum", l1);
}

std::map<std::string, double> RegbenchTask::metrics(const EvalTotals& totals) const {
  auto get = [&](const char* key) { return totals.sums.count(key) ? totals.sums.at(key) : 0.0; };
  const double n = get("symbol_positions");
  const double l1 = n > 0 ? get("l1_sum") / n : 0.0;
  return {{"accuracy", n > 0 ? get("allowed_correct") / n : 0.0},
          {"tvd", 0.5 * l1},
          {"tvd_seq_icl", l1},
          {"symbol_positions", n}};
}

namespace {
const config::Schema& regbench_schema() {
  const RegbenchOptions d;
  constexpr int64_t kBig = int64_t{1} << 28;  // as mqar's train_examples
  static const config::Schema schema(
      "data (task: regbench)",
      "In-context regular language learning as berlino/seq_icl generates it (docs/tasks.md).",
      {config::integer_key("vocab_size", d.vocab_size, 3, 1 << 20, "symbols + separator + padding"),
       config::integer_key("max_num_nodes", d.max_num_nodes, 1, 1 << 20,
                           "states of an automaton drawn from max_outgoing_edges .. max_num_nodes"),
       config::integer_key("max_outgoing_edges", d.max_outgoing_edges, 1, 1 << 20,
                           "edges per state drawn from 1 .. max_outgoing_edges - 1"),
       config::integer_key("min_examples", d.min_examples, 1, 1 << 20, "words per sequence drawn from min_examples .."),
       config::integer_key("max_examples", d.max_examples, 1, 1 << 20, ".. max_examples - 1"),
       config::integer_key("max_word_len", d.max_word_len, 1, 1 << 20, "word lengths drawn from 1 .. max_word_len - 1"),
       config::integer_key("train_automata", d.train_automata, 1, kBig, "automata (one sequence each) to train on"),
       config::integer_key("test_automata", d.test_automata, 1, kBig, "automata of the test split"),
       config::integer_key("validation_automata", d.validation_automata, 0, kBig,
                           "automata of the validation split (0: none)"),
       config::integer_key("seq_len", d.seq_len, 1, 1 << 20, "the most input tokens of one sequence (the cap)"),
       config::computed_default(
           config::integer_key("seed", 0, 0, INT64_MAX, "seeds the automata and words"), "run.seed")});
  return schema;
}

std::unique_ptr<Task> make_regbench(config::Section& data, uint64_t seed) {
  const config::Schema& keys = regbench_schema();
  RegbenchOptions o;
  o.vocab_size = data.integer(keys["vocab_size"]);
  o.max_num_nodes = data.integer(keys["max_num_nodes"]);
  o.max_outgoing_edges = data.integer(keys["max_outgoing_edges"]);
  o.min_examples = data.integer(keys["min_examples"]);
  o.max_examples = data.integer(keys["max_examples"]);
  o.max_word_len = data.integer(keys["max_word_len"]);
  o.train_automata = data.integer(keys["train_automata"]);
  o.test_automata = data.integer(keys["test_automata"]);
  o.validation_automata = data.integer(keys["validation_automata"]);
  o.seq_len = data.integer(keys["seq_len"]);
  seed = static_cast<uint64_t>(data.integer(keys["seed"], static_cast<int64_t>(seed)));
  try {
    o.validate();
    return std::make_unique<RegbenchTask>(o, seed);
  } catch (const std::invalid_argument& e) {
    // Messages read "regbench: <key> (...) must ...": point at that key.
    std::string message = std::string(e.what()).substr(10);
    std::string key = message.substr(0, message.find(' '));
    data.fail(key == "only" ? "train_automata" : key, message);  // too few distinct automata: the counts
  }
}
const TaskRegistration kRegbench("regbench", regbench_schema, make_regbench);
}  // namespace

}  // namespace bla::tasks
