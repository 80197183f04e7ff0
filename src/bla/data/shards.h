// Token shards: the on-disk form of a tokenised corpus (bla-data prepare).
//
// A folder holds raw little-endian token files, uint16 when the vocabulary
// fits (<= 65536 ids), else uint32, named train-00000.bin, ..., val-00000.bin,
// ..., and index.json, which describes them:
//
//   {"format": "bla-data", "version": 1, "dtype": "uint16", "vocab_size": 257,
//    "tokenizer": {"kind": "byte", "model": "", "end_of_document": 256},
//    "splits": {"train": {"documents": D, "tokens": T,
//                         "shards": [{"file": "train-00000.bin", "tokens": N,
//                                     "fnv1a64": "16 hex digits"}, ...]},
//               "val": {...}},
//    "inputs": [{"path": ..., "bytes": ..., "documents": ...}],
//    "seed": S, "val_fraction": F, "shard_tokens": N, "separator": "%",
//    "command": "bla-data prepare ..."}
//
// Each document's tokens are followed by the end-of-document id; whole
// documents go to the validation split ("val"). Shards hold at most
// shard_tokens tokens; a document may continue in the next shard.
#pragma once

#include "bla/util/read_only_file.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace bla::data {

inline constexpr int kShardFormatVersion = 1;
inline constexpr const char* kIndexFile = "index.json";

struct ShardInfo {
  std::string file;  // relative to the folder
  int64_t tokens = 0;
  uint64_t checksum = 0;  // FNV-1a 64 of the file's bytes
};

struct SplitInfo {
  int64_t documents = 0;
  int64_t tokens = 0;
  std::vector<ShardInfo> shards;
};

struct ShardIndex {
  std::string dtype;  // "uint16" or "uint32"
  int64_t vocab_size = 0;
  std::string tokenizer_kind;   // "byte", "ids" (imported token ids) or "sentencepiece"
  std::string tokenizer_model;  // the SentencePiece model path, "" for byte
  int64_t end_of_document = 0;
  SplitInfo train, val;
  nlohmann::json provenance = nlohmann::json::object();  // inputs, seed, val_fraction, shard_tokens, separator, command

  int64_t token_bytes() const { return dtype == "uint16" ? 2 : 4; }
  const SplitInfo& split(const std::string& name) const { return name == "train" ? train : val; }
  // How to write the folder again, for error messages: the recorded command,
  // or a generic hint.
  std::string remake_hint() const;
  nlohmann::json to_json() const;
  // Throws std::runtime_error naming `path` and the field that is wrong.
  static ShardIndex from_json(const nlohmann::json& json, const std::string& path);
};

// "uint16" when every id fits in 16 bits, else "uint32".
std::string dtype_for_vocab(int64_t vocab_size);

// Reads DIR/index.json; throws std::runtime_error naming the file and how to
// make it (bla-data prepare) when it is missing or malformed.
ShardIndex read_index(const std::string& dir);

// One split's shards, checked against the index when opened: each file must
// exist, have tokens * token_bytes bytes, the recorded checksum, and only ids
// below vocab_size (one pass over the file does both; the id scan costs about
// 4% of the checksum: 12 ms per 200 MB of uint16 against 300 ms). Errors
// (std::runtime_error) name the file, what differs and the fix.
//
// The files stay open and are read with pread, never through a mapping, so
// a shard truncated while a run reads it is an error, not SIGBUS; before
// each read the file is checked to be the one opened (size, modification
// time, inode), and the ids read are range-checked again.
class SplitShards {
 public:
  SplitShards(const std::string& dir, const ShardIndex& index, const std::string& split);
  int64_t num_shards() const { return static_cast<int64_t>(files_.size()); }
  int64_t shard_tokens(int64_t shard) const { return tokens_[static_cast<size_t>(shard)]; }
  // Copies tokens [first, first + count) of `shard` into `out` as int64.
  // Throws std::runtime_error naming the file when it changed since it was
  // opened ("changed while reading; prepare the folder again ...") or holds
  // an id >= vocab_size (naming the token's offset).
  void read(int64_t shard, int64_t first, int64_t count, int64_t* out) const;

 private:
  std::runtime_error changed_error(const util::ReadOnlyFile& file) const;
  std::vector<util::ReadOnlyFile> files_;
  std::vector<int64_t> tokens_;
  int64_t token_bytes_ = 2;
  int64_t vocab_size_ = 0;
  std::string index_path_;
  std::string remake_hint_;
};

}  // namespace bla::data
