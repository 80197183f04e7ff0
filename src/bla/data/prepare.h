// bla-data prepare: input files -> token shards and index.json (shards.h).
//
// Documents: text files, JSONL files or token files, as documents.h reads
// them; text is tokenised, token ids are kept as they are (the index then
// records tokenizer kind "ids"). The validation split is
// round(val_fraction * documents) whole documents (at least one when
// val_fraction > 0), drawn without replacement by a generator seeded from
// `seed`: the same inputs, tokenizer and seed give the same split, and the
// two splits share no document.
#pragma once

#include "bla/data/documents.h"
#include "bla/data/shards.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bla::data {

struct PrepareOptions {
  std::vector<std::string> inputs;
  DocumentFormat format;           // text (default), jsonl, llmc, uint16
  std::string tokenizer = "byte";  // "byte" or a SentencePiece model path (text formats)
  std::string out_dir;
  double val_fraction = 0.01;
  uint64_t seed = 0;
  int64_t shard_tokens = 100'000'000;
  std::string dtype = "auto";  // "auto" (uint16 when the vocabulary fits), "uint16", "uint32"
  std::string command;        // recorded in index.json, so errors can say how to remake the folder
};

// Writes the shards and then index.json (each file atomically) and removes
// shard files of an earlier preparation that the new index does not list.
// Returns the index. Throws std::invalid_argument for bad options (naming
// the option) and std::runtime_error for unreadable inputs.
ShardIndex prepare_shards(const PrepareOptions& options);

}  // namespace bla::data
