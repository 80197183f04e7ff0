#include "bla/data/shards.h"

#include "bla/util/checksum.h"
#include "bla/util/files.h"

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

SplitShards::SplitShards(const std::string& dir, const ShardIndex& index, const std::string& split)
    : token_bytes_(index.token_bytes()) {
  const std::string index_path = util::join_path(dir, kIndexFile);
  for (const auto& shard : index.split(split).shards) {
    const std::string path = util::join_path(dir, shard.file);
    if (!util::path_exists(path)) {
      throw std::runtime_error(path + " is missing (" + index_path + " lists it); " + index.remake_hint());
    }
    util::MappedFile file(path);
    const auto expected = static_cast<uint64_t>(shard.tokens) * static_cast<uint64_t>(token_bytes_);
    if (file.size() != expected) {
      throw std::runtime_error(path + " has " + std::to_string(file.size()) + " bytes, but " + index_path + " says " +
                               std::to_string(shard.tokens) + " " + index.dtype + " tokens (" + std::to_string(expected) +
                               " bytes): the file is truncated or was changed; " + index.remake_hint());
    }
    const uint64_t checksum = util::fnv1a64(file.data(), file.size());
    if (checksum != shard.checksum) {
      throw std::runtime_error(path + " has checksum " + util::hex64(checksum) + ", but " + index_path + " says " +
                               util::hex64(shard.checksum) + ": the file is corrupt or was changed; " +
                               index.remake_hint());
    }
    files_.push_back(std::move(file));
    tokens_.push_back(shard.tokens);
  }
}

void SplitShards::read(int64_t shard, int64_t first, int64_t count, int64_t* out) const {
  const auto& file = files_.at(static_cast<size_t>(shard));
  if (first < 0 || count < 0 || first + count > tokens_[static_cast<size_t>(shard)]) {
    throw std::out_of_range(file.path() + ": tokens [" + std::to_string(first) + ", " + std::to_string(first + count) +
                            ") are out of range");
  }
  const unsigned char* at = file.data() + first * token_bytes_;
  if (token_bytes_ == 2) {
    for (int64_t i = 0; i < count; ++i) {
      uint16_t v;
      std::memcpy(&v, at + 2 * i, 2);
      out[i] = v;
    }
  } else {
    for (int64_t i = 0; i < count; ++i) {
      uint32_t v;
      std::memcpy(&v, at + 4 * i, 4);
      out[i] = v;
    }
  }
}

}  // namespace bla::data
