#include "bla/tasks/text.h"

#include "bla/config/section.h"
#include "bla/util/files.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace bla::tasks {

TextTask::TextTask(TextOptions options) : options_(std::move(options)), index_(data::read_index(options_.path)) {
  train_ = make_windows("train");
  val_ = make_windows("val");
  const int64_t need = options_.seq_len + 1;
  for (const auto& [name, split, w] : {std::make_tuple("train", &index_.train, &train_),
                                       std::make_tuple("validation", &index_.val, &val_)}) {
    if (w->first.back() == 0) {
      throw std::runtime_error(std::string("the ") + name + " split of " + options_.path + " has no window of seq_len + 1 = " +
                               std::to_string(need) + " tokens within one shard (" + std::to_string(split->tokens) +
                               " tokens in " + std::to_string(split->shards.size()) +
                               " shard(s)); lower data.seq_len, or prepare the folder with more text" +
                               (split == &index_.val ? " or a larger --val-fraction" : ""));
    }
  }
}

TextTask::Windows TextTask::make_windows(const std::string& split) const {
  Windows w;
  w.shards = std::make_unique<data::SplitShards>(options_.path, index_, split);
  w.first.push_back(0);
  for (int64_t s = 0; s < w.shards->num_shards(); ++s) {
    const int64_t tokens = w.shards->shard_tokens(s);
    const int64_t count = tokens > options_.seq_len ? (tokens - 1) / options_.seq_len : 0;
    w.first.push_back(w.first.back() + count);
  }
  return w;
}

std::unique_ptr<data::Tokenizer> TextTask::tokenizer() const {
  if (index_.tokenizer_kind == "ids") return std::make_unique<data::IdTokenizer>(index_.vocab_size, index_.end_of_document);
  const std::string key = "the tokenizer of " + util::join_path(options_.path, data::kIndexFile);
  return data::make_tokenizer(index_.tokenizer_kind == "byte" ? "byte" : index_.tokenizer_model, key);
}

int64_t TextTask::num_examples(Split split) const {
  return split == Split::kValidation ? 0 : windows(split).first.back();  // no validation split yet
}

std::vector<int64_t> TextTask::window(Split split, int64_t index) const {
  const auto& w = windows(split);
  if (index < 0 || index >= w.first.back()) {
    throw std::out_of_range("text: example " + std::to_string(index) + " of a split with " +
                            std::to_string(w.first.back()) + " windows");
  }
  // The shard whose windows [first[s], first[s + 1]) hold `index`.
  const auto s = std::upper_bound(w.first.begin(), w.first.end(), index) - w.first.begin() - 1;
  std::vector<int64_t> tokens(static_cast<size_t>(options_.seq_len + 1));
  w.shards->read(s, (index - w.first[static_cast<size_t>(s)]) * options_.seq_len, options_.seq_len + 1, tokens.data());
  return tokens;
}

Batch TextTask::batch(Split split, const std::vector<int64_t>& indices) const {
  TORCH_CHECK(split != Split::kValidation, "the text task has no validation split");
  const int64_t B = static_cast<int64_t>(indices.size()), L = options_.seq_len;
  auto inputs = torch::empty({B, L}, torch::kLong);
  auto targets = torch::empty({B, L}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto tokens = window(split, indices[static_cast<size_t>(b)]);
    std::copy(tokens.begin(), tokens.end() - 1, inputs.data_ptr<int64_t>() + b * L);
    std::copy(tokens.begin() + 1, tokens.end(), targets.data_ptr<int64_t>() + b * L);
  }
  return {inputs, targets, {}};
}

std::map<std::string, double> TextTask::metrics(const EvalTotals& totals) const {
  auto get = [&](const char* key) { return totals.sums.count(key) ? totals.sums.at(key) : 0.0; };
  const double positions = get(kLossPositions);
  const double loss = positions > 0 ? get(kLossSum) / positions : 0.0;
  auto metrics = Task::metrics(totals);  // accuracy: argmax is the next token
  metrics["perplexity"] = std::exp(loss);
  metrics["bits_per_token"] = loss / std::log(2.0);
  metrics["tokens"] = positions;
  return metrics;
}

namespace {
const config::Schema& text_schema() {
  const TextOptions d;
  static const config::Schema schema(
      "data (task: text)", "Language modelling on a folder of token shards (docs/text.md).",
      {config::required(config::string_key("path", "", "the folder `bla-data prepare` wrote")),
       config::integer_key("seq_len", d.seq_len, 1, 1 << 20,
                           "tokens per example: example i is the window of seq_len + 1 tokens at i * seq_len")});
  return schema;
}

std::unique_ptr<Task> make_text(config::Section& data, uint64_t /*seed*/) {
  const config::Schema& keys = text_schema();
  TextOptions o;
  if (!data.has("path")) {
    data.fail("path", "is required: the folder bla-data prepare wrote (e.g. build/data/fortunes, made by "
                      "scripts/prepare_text_corpus.sh)");
  }
  o.path = data.string(keys["path"]);
  if (o.path.empty()) data.fail("path", "is empty: give the folder bla-data prepare wrote");
  o.seq_len = data.integer(keys["seq_len"]);
  try {
    return std::make_unique<TextTask>(o);
  } catch (const std::runtime_error& e) {
    data.fail("path", e.what());
  }
}
const TaskRegistration kText("text", text_schema, make_text);
}  // namespace

}  // namespace bla::tasks
