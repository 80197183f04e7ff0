// A small English-like corpus and the options that prepare it, for the
// tests of bla-data prepare and of the text task.
#pragma once

#include "bla/data/prepare.h"
#include "bla/data/tokenizer.h"
#include "bla/util/files.h"

#include "support/run_helpers.h"
#include "support/shard_reading.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace bla::testing {

// Document k of the test corpus: distinct, English-like, 60..120 bytes.
inline std::string document(int k) {
  static const char* subjects[] = {"the cat", "a dog", "my friend", "the old man", "our teacher"};
  static const char* verbs[] = {"sat on", "looked at", "walked past", "talked about", "wrote to"};
  static const char* objects[] = {"the mat", "a tree", "the river", "his house", "the small garden"};
  std::string text = "Note " + std::to_string(k) + ":";
  for (int s = 0; s < 2 + k % 2; ++s) {
    text += std::string(" ") + subjects[(k + s) % 5] + " " + verbs[(k * 3 + s) % 5] + " " + objects[(k * 7 + s) % 5] + ".";
  }
  return text + "\n";
}

// Writes `files` text files of `per_file` documents each, separated by "%" lines.
inline std::vector<std::string> write_corpus(const TempDir& tmp, int files, int per_file) {
  std::vector<std::string> paths;
  int k = 0;
  for (int f = 0; f < files; ++f) {
    std::string text;
    for (int d = 0; d < per_file; ++d) text += (d > 0 ? "%\n" : "") + document(k++);
    paths.push_back(tmp / ("corpus-" + std::to_string(f) + ".txt"));
    util::write_file_atomically(paths.back(), text);
  }
  return paths;
}

inline data::PrepareOptions options_for(const std::vector<std::string>& inputs, const std::string& out) {
  data::PrepareOptions o;
  o.inputs = inputs;
  o.out_dir = out;
  o.format.separator = "%";
  o.val_fraction = 0.2;
  o.seed = 7;
  o.shard_tokens = 1000;
  return o;
}

// The documents of a split: its tokens cut at the end-of-document id, decoded.
inline std::set<std::string> split_documents_text(const std::string& dir, const data::ShardIndex& index,
                                                  const data::SplitInfo& split) {
  std::set<std::string> documents;
  std::vector<int64_t> current;
  for (int64_t id : split_tokens(dir, index, split)) {
    if (id == index.end_of_document) {
      documents.insert(data::ByteTokenizer().decode(current));
      current.clear();
    } else {
      current.push_back(id);
    }
  }
  EXPECT_TRUE(current.empty()) << "a split ends with an end-of-document id";
  return documents;
}

}  // namespace bla::testing
