// Language modelling on a prepared text folder (bla-data prepare; see
// src/bla/data/shards.h for the format). The shards are memory-mapped and
// checked against index.json when the task is built.
//
// Example i of a split is the window of seq_len + 1 tokens that starts at
// token i * seq_len of one shard (windows do not cross shards; a shard's
// last partial window is dropped): inputs are its first seq_len tokens,
// targets the next token at every position, all supervised. Windows are
// disjoint in their inputs, so an epoch of the trainer's data order (a
// seeded permutation of the window indices, each rank its slice of every
// batch) reads each training token once, and the data position resumes it.
// The test split is the validation split of the folder.
//
// Metrics: loss (mean cross-entropy per token, nats), perplexity
// (exp(loss)), bits_per_token (loss / ln 2: bits per byte with the byte
// tokenizer), accuracy (argmax = next token) and tokens (scored positions).
#pragma once

#include "bla/data/shards.h"
#include "bla/data/tokenizer.h"
#include "bla/tasks/task.h"

#include <memory>

namespace bla::tasks {

struct TextOptions {
  std::string path;      // the folder bla-data prepare wrote
  int64_t seq_len = 256;
};

class TextTask : public Task {
 public:
  // Reads and checks the folder; throws std::runtime_error naming the file
  // that is missing or differs from the index, and the fix.
  explicit TextTask(TextOptions options);
  std::string name() const override { return "text"; }
  int64_t vocab_size() const override { return index_.vocab_size; }
  int64_t seq_len() const override { return options_.seq_len; }
  int64_t num_examples(Split split) const override;
  Batch batch(Split split, const std::vector<int64_t>& indices) const override;
  std::map<std::string, double> metrics(const EvalTotals& totals) const override;
  std::string headline_metric() const override { return "perplexity"; }

  const data::ShardIndex& index() const { return index_; }
  // The folder (data.path).
  const std::string& path() const { return options_.path; }
  // The tokenizer the folder was prepared with (index.json), for text prompts.
  std::unique_ptr<data::Tokenizer> tokenizer() const;
  // The seq_len + 1 tokens of example `index` of `split`.
  std::vector<int64_t> window(Split split, int64_t index) const;

 private:
  struct Windows {
    std::unique_ptr<data::SplitShards> shards;
    std::vector<int64_t> first;  // first[s]: the index of shard s's first window; first.back(): the count
  };
  const Windows& windows(Split split) const { return split == Split::kTrain ? train_ : val_; }
  Windows make_windows(const std::string& split) const;

  TextOptions options_;
  data::ShardIndex index_;
  Windows train_, val_;
};

}  // namespace bla::tasks
