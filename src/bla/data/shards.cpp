#include "bla/data/shards.h"

#include "bla/util/checksum.h"
#include "bla/util/files.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace bla::data {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "token shards are little-endian and read in place");

namespace {

nlohmann::json split_json(const SplitInfo& split) {
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& s : split.shards) {
    shards.push_back({{"file", s.file}, {"tokens", s.tokens}, {"fnv1a64", util::hex64(s.checksum)}});
  }
  return {{"documents", split.documents}, {"tokens", split.tokens}, {"shards", shards}};
}

uint64_t parse_hex64(const std::string& text) {
  if (text.size() != 16 || text.find_first_not_of("0123456789abcdef") != std::string::npos) {
    throw std::invalid_argument("expected 16 lower-case hex digits, got '" + text + "'");
  }
  return std::stoull(text, nullptr, 16);
}

SplitInfo split_from_json(const nlohmann::json& json) {
  SplitInfo split;
  split.documents = json.at("documents").get<int64_t>();
  split.tokens = json.at("tokens").get<int64_t>();
  int64_t total = 0;
  for (const auto& s : json.at("shards")) {
    ShardInfo shard{s.at("file").get<std::string>(), s.at("tokens").get<int64_t>(),
                    parse_hex64(s.at("fnv1a64").get<std::string>())};
    if (shard.file.empty() || shard.file.find('/') != std::string::npos || shard.tokens < 0) {
      throw std::invalid_argument("bad shard entry " + s.dump());
    }
    total += shard.tokens;
    split.shards.push_back(std::move(shard));
  }
  if (total != split.tokens) {
    throw std::invalid_argument("the shards hold " + std::to_string(total) + " tokens, the split says " +
                                std::to_string(split.tokens));
  }
  return split;
}

}  // namespace

std::string dtype_for_vocab(int64_t vocab_size) { return vocab_size <= 65536 ? "uint16" : "uint32"; }

std::string ShardIndex::remake_hint() const {
  const std::string command = provenance.value("command", std::string());
  return command.empty() ? "prepare the folder again with bla-data prepare" : "prepare the folder again: " + command;
}

nlohmann::json ShardIndex::to_json() const {
  nlohmann::json json = {
      {"format", "bla-data"},
      {"version", kShardFormatVersion},
      {"dtype", dtype},
      {"byte_order", "little"},
      {"vocab_size", vocab_size},
      {"tokenizer", {{"kind", tokenizer_kind}, {"model", tokenizer_model}, {"end_of_document", end_of_document}}},
      {"splits", {{"train", split_json(train)}, {"val", split_json(val)}}},
  };
  for (const auto& [key, value] : provenance.items()) json[key] = value;
  return json;
}

ShardIndex ShardIndex::from_json(const nlohmann::json& json, const std::string& path) {
  try {
    if (json.value("format", std::string()) != "bla-data") {
      throw std::invalid_argument("\"format\" is not \"bla-data\"");
    }
    const int version = json.at("version").get<int>();
    if (version != kShardFormatVersion) {
      throw std::invalid_argument("format version " + std::to_string(version) + ", this bla-train reads version " +
                                  std::to_string(kShardFormatVersion));
    }
    ShardIndex index;
    index.dtype = json.at("dtype").get<std::string>();
    if (index.dtype != "uint16" && index.dtype != "uint32") {
      throw std::invalid_argument("dtype '" + index.dtype + "' is not uint16 or uint32");
    }
    index.vocab_size = json.at("vocab_size").get<int64_t>();
    if (index.vocab_size < 1 || (index.dtype == "uint16" && index.vocab_size > 65536)) {
      throw std::invalid_argument("vocab_size " + std::to_string(index.vocab_size) + " does not fit " + index.dtype);
    }
    const auto& tokenizer = json.at("tokenizer");
    index.tokenizer_kind = tokenizer.at("kind").get<std::string>();
    index.tokenizer_model = tokenizer.at("model").get<std::string>();
    index.end_of_document = tokenizer.at("end_of_document").get<int64_t>();
    if (index.end_of_document < 0 || index.end_of_document >= index.vocab_size) {
      throw std::invalid_argument("tokenizer.end_of_document " + std::to_string(index.end_of_document) +
                                  " is outside the vocabulary [0, " + std::to_string(index.vocab_size) + ")");
    }
    index.train = split_from_json(json.at("splits").at("train"));
    index.val = split_from_json(json.at("splits").at("val"));
    for (const auto& [key, value] : json.items()) {
      if (key != "format" && key != "version" && key != "dtype" && key != "byte_order" && key != "vocab_size" &&
          key != "tokenizer" && key != "splits") {
        index.provenance[key] = value;
      }
    }
    return index;
  } catch (const std::exception& e) {  // nlohmann's messages name the missing key or the wrong type
    throw std::runtime_error(path + ": not a valid bla-data index (" + e.what() +
                             "); prepare the folder again with bla-data prepare");
  }
}

ShardIndex read_index(const std::string& dir) {
  const std::string path = util::join_path(dir, kIndexFile);
  if (!util::path_exists(path)) {
    throw std::runtime_error(path + " not found: " + dir +
                             " is not a prepared text folder; make one with bla-data prepare --input FILES... --out " + dir);
  }
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(util::read_file(path));
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not valid JSON (" + e.what() + "); prepare the folder again with bla-data prepare");
  }
  return ShardIndex::from_json(json, path);
}

namespace {

// Little-endian ids of `bytes / token_bytes` tokens into out (when given),
// returning the position of the first id >= vocab_size, or -1.
int64_t decode_ids(const unsigned char* bytes, int64_t count, int64_t token_bytes, int64_t vocab_size,
                   int64_t* out) {
  int64_t first_bad = -1;
  auto decode = [&](auto zero) {
    using Id = decltype(zero);
    Id largest = 0;
    for (int64_t i = 0; i < count; ++i) {
      Id v;
      std::memcpy(&v, bytes + i * static_cast<int64_t>(sizeof(Id)), sizeof(Id));
      if (out != nullptr) out[i] = v;
      largest = v > largest ? v : largest;
    }
    if (static_cast<int64_t>(largest) < vocab_size) return;  // the common case: one comparison per block
    for (int64_t i = 0; i < count && first_bad < 0; ++i) {
      Id v;
      std::memcpy(&v, bytes + i * static_cast<int64_t>(sizeof(Id)), sizeof(Id));
      if (static_cast<int64_t>(v) >= vocab_size) first_bad = i;
    }
  };
  if (token_bytes == 2) {
    decode(uint16_t{0});
  } else {
    decode(uint32_t{0});
  }
  return first_bad;
}

std::string token_id_at(const unsigned char* bytes, int64_t token_bytes) {
  uint32_t v = 0;
  std::memcpy(&v, bytes, static_cast<size_t>(token_bytes));  // little-endian
  return std::to_string(v);
}

}  // namespace

SplitShards::SplitShards(const std::string& dir, const ShardIndex& index, const std::string& split)
    : token_bytes_(index.token_bytes()),
      vocab_size_(index.vocab_size),
      index_path_(util::join_path(dir, kIndexFile)),
      remake_hint_(index.remake_hint()) {
  for (const auto& shard : index.split(split).shards) {
    const std::string path = util::join_path(dir, shard.file);
    if (!util::path_exists(path)) {
      throw std::runtime_error(path + " is missing (" + index_path_ + " lists it); " + remake_hint_);
    }
    util::ReadOnlyFile file(path);
    const auto expected = static_cast<uint64_t>(shard.tokens) * static_cast<uint64_t>(token_bytes_);
    if (file.size() != expected) {
      throw std::runtime_error(path + " has " + std::to_string(file.size()) + " bytes, but " + index_path_ + " says " +
                               std::to_string(shard.tokens) + " " + index.dtype + " tokens (" + std::to_string(expected) +
                               " bytes): the file is truncated or was changed; " + remake_hint_);
    }
    // One pass: the checksum, and the first id outside the vocabulary.
    std::vector<unsigned char> block(size_t{1} << 20);
    uint64_t checksum = util::kFnv1a64Offset;
    int64_t bad_token = -1;
    std::string bad_id;
    for (uint64_t offset = 0; offset < expected; offset += block.size()) {
      const size_t bytes = static_cast<size_t>(std::min<uint64_t>(block.size(), expected - offset));
      if (!file.read_at(offset, bytes, block.data())) throw changed_error(file);
      checksum = util::fnv1a64(block.data(), bytes, checksum);
      if (bad_token < 0) {
        const int64_t at = decode_ids(block.data(), static_cast<int64_t>(bytes) / token_bytes_, token_bytes_, vocab_size_,
                                      nullptr);
        if (at >= 0) {
          bad_token = static_cast<int64_t>(offset) / token_bytes_ + at;
          bad_id = token_id_at(block.data() + at * token_bytes_, token_bytes_);
        }
      }
    }
    if (checksum != shard.checksum) {
      throw std::runtime_error(path + " has checksum " + util::hex64(checksum) + ", but " + index_path_ + " says " +
                               util::hex64(shard.checksum) + ": the file is corrupt or was changed; " + remake_hint_);
    }
    if (bad_token >= 0) {
      throw std::runtime_error(path + ": token " + std::to_string(bad_token) + " (byte offset " +
                               std::to_string(bad_token * token_bytes_) + ") is id " + bad_id +
                               ", outside the vocabulary [0, " + std::to_string(vocab_size_) + ") of " + index_path_ +
                               ": its vocab_size is wrong or the shards were written with another tokenizer; " +
                               remake_hint_);
    }
    files_.push_back(std::move(file));
    tokens_.push_back(shard.tokens);
  }
}

std::runtime_error SplitShards::changed_error(const util::ReadOnlyFile& file) const {
  std::string what = file.changed_since_opened();
  if (what.empty()) what = "a read ended before the end it had when opened";
  return std::runtime_error(file.path() + " changed while reading; " + remake_hint_ + " (" + what + ")");
}

void SplitShards::read(int64_t shard, int64_t first, int64_t count, int64_t* out) const {
  const auto& file = files_.at(static_cast<size_t>(shard));
  if (first < 0 || count < 0 || first + count > tokens_[static_cast<size_t>(shard)]) {
    throw std::out_of_range(file.path() + ": tokens [" + std::to_string(first) + ", " + std::to_string(first + count) +
                            ") are out of range");
  }
  // A file changed under the run is named before any of it is used; pread
  // (not a mapping) keeps a truncation between the check and the read an
  // error rather than SIGBUS.
  if (!file.changed_since_opened().empty()) throw changed_error(file);
  thread_local std::vector<unsigned char> bytes;
  bytes.resize(static_cast<size_t>(count * token_bytes_));
  if (!file.read_at(static_cast<uint64_t>(first * token_bytes_), bytes.size(), bytes.data())) throw changed_error(file);
  const int64_t at = decode_ids(bytes.data(), count, token_bytes_, vocab_size_, out);
  if (at >= 0) {
    throw std::runtime_error(file.path() + ": token " + std::to_string(first + at) + " (byte offset " +
                             std::to_string((first + at) * token_bytes_) + ") is id " + std::to_string(out[at]) +
                             ", outside the vocabulary [0, " + std::to_string(vocab_size_) + ") of " + index_path_ +
                             "; " + remake_hint_);
  }
}

}  // namespace bla::data
