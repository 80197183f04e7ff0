#include "bla/data/prepare.h"

#include "bla/data/tokenizer.h"
#include "bla/util/checksum.h"
#include "bla/util/files.h"
#include "bla/util/mapped_file.h"
#include "bla/util/seed.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <regex>
#include <set>
#include <stdexcept>
#include <string_view>

namespace bla::data {

namespace {

constexpr uint64_t kValidationDocuments = 0x76616c;  // seed stream "val"

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

// Collects one split's tokens and writes a shard each time shard_tokens are reached.
class ShardWriter {
 public:
  ShardWriter(std::string dir, std::string split, const std::string& dtype, int64_t shard_tokens)
      : dir_(std::move(dir)), split_(std::move(split)), token_bytes_(dtype == "uint16" ? 2 : 4),
        shard_tokens_(shard_tokens) {}

  void add_document(const std::vector<int64_t>& ids, int64_t end_of_document) {
    for (int64_t id : ids) add(id);
    add(end_of_document);
    info_.documents += 1;
  }

  SplitInfo finish() {
    flush();
    return info_;
  }

 private:
  void add(int64_t id) {
    if (token_bytes_ == 2) {
      const auto v = static_cast<uint16_t>(id);
      bytes_.append(reinterpret_cast<const char*>(&v), 2);
    } else {
      const auto v = static_cast<uint32_t>(id);
      bytes_.append(reinterpret_cast<const char*>(&v), 4);
    }
    info_.tokens += 1;
    if (static_cast<int64_t>(bytes_.size()) == shard_tokens_ * token_bytes_) flush();
  }

  void flush() {
    if (bytes_.empty()) return;
    char name[64];
    std::snprintf(name, sizeof(name), "%s-%05zu.bin", split_.c_str(), info_.shards.size());
    util::write_file_atomically(util::join_path(dir_, name), bytes_);
    info_.shards.push_back({name, static_cast<int64_t>(bytes_.size()) / token_bytes_, util::fnv1a64(bytes_)});
    bytes_.clear();
  }

  std::string dir_, split_;
  int64_t token_bytes_, shard_tokens_;
  std::string bytes_;
  SplitInfo info_;
};

void check(const PrepareOptions& o) {
  auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (o.inputs.empty()) fail("--input: give at least one text file");
  if (o.out_dir.empty()) fail("--out: give the folder to write the shards to");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) {
    fail("--val-fraction " + number(o.val_fraction) + ": must be in [0, 1)");
  }
  if (o.shard_tokens < 1) fail("--shard-tokens " + std::to_string(o.shard_tokens) + ": must be >= 1");
  if (o.dtype != "auto" && o.dtype != "uint16" && o.dtype != "uint32") {
    fail("--dtype " + o.dtype + ": must be auto, uint16 or uint32");
  }
  o.format.check();
}

}  // namespace

ShardIndex prepare_shards(const PrepareOptions& o) {
  check(o);
  if (o.format.is_tokens() && o.tokenizer != "byte") {
    throw std::invalid_argument("--tokenizer: token files (--format " + o.format.name +
                                ") are not tokenised again; leave --tokenizer out");
  }
  const std::unique_ptr<Tokenizer> tokenizer =
      o.format.is_tokens() ? std::make_unique<IdTokenizer>(o.format.vocab_size, o.format.end_of_document)
                           : make_tokenizer(o.tokenizer, "--tokenizer");
  const int64_t vocab = tokenizer->vocab_size();
  const std::string dtype = o.dtype == "auto" ? dtype_for_vocab(vocab) : o.dtype;
  if (dtype == "uint16" && vocab > 65536) {
    throw std::invalid_argument("--dtype uint16: the tokenizer has " + std::to_string(vocab) +
                                " ids, more than 16 bits hold; use --dtype uint32 or auto");
  }

  // Pass 1: every document of every file, so the split can be drawn exactly.
  struct Document {
    size_t file;
    int64_t index;  // in its file
  };
  std::vector<DocumentFile> files;  // read in place: the page cache holds the text, not the heap
  std::vector<Document> documents;
  nlohmann::json inputs = nlohmann::json::array();
  for (size_t f = 0; f < o.inputs.size(); ++f) {
    if (!util::path_exists(o.inputs[f]) || util::is_directory(o.inputs[f])) {
      throw std::runtime_error("--input " + o.inputs[f] + ": no such file");
    }
    files.emplace_back(o.inputs[f], o.format);
    const util::MappedFile& file = files.back().file();
    for (int64_t d = 0; d < files.back().documents(); ++d) documents.push_back({f, d});
    inputs.push_back({{"path", o.inputs[f]}, {"bytes", file.size()}, {"documents", files.back().documents()},
                      {"fnv1a64", util::hex64(util::fnv1a64(file.data(), file.size()))}});
  }
  const int64_t n = static_cast<int64_t>(documents.size());
  int64_t n_val = static_cast<int64_t>(std::llround(o.val_fraction * static_cast<double>(n)));
  if (o.val_fraction > 0) n_val = std::max<int64_t>(n_val, 1);
  if (n == 0) throw std::runtime_error("--input: the files hold no documents (every document is empty)");
  if (n_val >= n) {
    throw std::invalid_argument("--val-fraction " + number(o.val_fraction) + ": " + std::to_string(n) +
                                " document(s) leave none for training; give more documents" +
                                (o.format.name == "text" && o.format.separator.empty() ? " (more files, or --separator LINE to split files)"
                                                                               : "") +
                                " or a smaller --val-fraction");
  }
  std::vector<char> is_val(static_cast<size_t>(n), 0);
  {
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(util::derive_seed(o.seed, kValidationDocuments, 0));
    for (int64_t i = 0; i < n_val; ++i) {  // partial Fisher-Yates: n_val distinct documents
      std::uniform_int_distribution<int64_t> pick(i, n - 1);
      std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(pick(rng))]);
      is_val[static_cast<size_t>(order[static_cast<size_t>(i)])] = 1;
    }
  }

  // Pass 2: tokenise in document order into the two splits.
  util::create_directories(o.out_dir);
  ShardWriter train(o.out_dir, "train", dtype, o.shard_tokens), val(o.out_dir, "val", dtype, o.shard_tokens);
  for (int64_t d = 0; d < n; ++d) {
    const auto& doc = documents[static_cast<size_t>(d)];
    const DocumentFile& file = files[doc.file];
    const auto ids = o.format.is_tokens() ? file.tokens(doc.index) : tokenizer->encode(file.text(doc.index));
    (is_val[static_cast<size_t>(d)] ? val : train).add_document(ids, tokenizer->end_of_document());
  }

  ShardIndex index;
  index.dtype = dtype;
  index.vocab_size = vocab;
  index.tokenizer_kind = tokenizer->kind();
  index.tokenizer_model = tokenizer->model_path();
  index.end_of_document = tokenizer->end_of_document();
  index.train = train.finish();
  index.val = val.finish();
  index.provenance = {{"inputs", inputs},          {"seed", o.seed},
                      {"val_fraction", o.val_fraction}, {"shard_tokens", o.shard_tokens},
                      {"input_format", o.format.name}, {"separator", o.format.separator},
                      {"field", o.format.name == "jsonl" ? o.format.field : ""}, {"command", o.command}};
  util::write_file_atomically(util::join_path(o.out_dir, kIndexFile), index.to_json().dump(2) + "\n");

  // Shards of an earlier preparation into the same folder that this one did not write.
  std::set<std::string> listed;
  for (const auto* split : {&index.train, &index.val}) {
    for (const auto& shard : split->shards) listed.insert(shard.file);
  }
  static const std::regex shard_name(R"((train|val)-\d{5,}\.bin)");
  for (const auto& name : util::list_directory(o.out_dir)) {
    if (std::regex_match(name, shard_name) && !listed.count(name)) util::remove_file(util::join_path(o.out_dir, name));
  }
  return index;
}

}  // namespace bla::data
