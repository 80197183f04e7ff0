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

std::string_view text_of(const util::MappedFile& file) {
  return {reinterpret_cast<const char*>(file.data()), file.size()};
}

bool blank(const char* begin, const char* end) {
  return std::all_of(begin, end, [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
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
  if (o.separator.find('\n') != std::string::npos) fail("--separator: a separator is one line, without a newline");
}

}  // namespace

std::vector<std::pair<size_t, size_t>> split_documents(std::string_view text, const std::string& separator) {
  std::vector<std::pair<size_t, size_t>> documents;
  auto keep = [&](size_t begin, size_t end) {
    if (!blank(text.data() + begin, text.data() + end)) documents.emplace_back(begin, end);
  };
  if (separator.empty()) {
    keep(0, text.size());
    return documents;
  }
  size_t begin = 0;  // start of the current document
  for (size_t line = 0; line < text.size();) {
    size_t newline = text.find('\n', line);
    const size_t line_end = newline == std::string::npos ? text.size() : newline;
    size_t content_end = line_end;
    if (content_end > line && text[content_end - 1] == '\r') --content_end;
    const size_t next = newline == std::string::npos ? text.size() : newline + 1;
    if (text.compare(line, content_end - line, separator) == 0) {
      keep(begin, line);
      begin = next;
    }
    line = next;
  }
  keep(begin, text.size());
  return documents;
}

ShardIndex prepare_shards(const PrepareOptions& o) {
  check(o);
  const auto tokenizer = make_tokenizer(o.tokenizer, "--tokenizer");
  const int64_t vocab = tokenizer->vocab_size();
  const std::string dtype = o.dtype == "auto" ? dtype_for_vocab(vocab) : o.dtype;
  if (dtype == "uint16" && vocab > 65536) {
    throw std::invalid_argument("--dtype uint16: the tokenizer has " + std::to_string(vocab) +
                                " ids, more than 16 bits hold; use --dtype uint32 or auto");
  }

  // Pass 1: every document of every file, so the split can be drawn exactly.
  struct Document {
    size_t file, begin, end;
  };
  std::vector<util::MappedFile> files;  // read in place: the page cache holds the text, not the heap
  std::vector<Document> documents;
  nlohmann::json inputs = nlohmann::json::array();
  for (size_t f = 0; f < o.inputs.size(); ++f) {
    if (!util::path_exists(o.inputs[f]) || util::is_directory(o.inputs[f])) {
      throw std::runtime_error("--input " + o.inputs[f] + ": no such file");
    }
    files.emplace_back(o.inputs[f]);
    const auto ranges = split_documents(text_of(files.back()), o.separator);
    for (const auto& [begin, end] : ranges) documents.push_back({f, begin, end});
    inputs.push_back({{"path", o.inputs[f]}, {"bytes", files.back().size()}, {"documents", ranges.size()},
                      {"fnv1a64", util::hex64(util::fnv1a64(files.back().data(), files.back().size()))}});
  }
  const int64_t n = static_cast<int64_t>(documents.size());
  int64_t n_val = static_cast<int64_t>(std::llround(o.val_fraction * static_cast<double>(n)));
  if (o.val_fraction > 0) n_val = std::max<int64_t>(n_val, 1);
  if (n == 0) throw std::runtime_error("--input: the files hold no text (every document is empty)");
  if (n_val >= n) {
    throw std::invalid_argument("--val-fraction " + number(o.val_fraction) + ": " + std::to_string(n) +
                                " document(s) leave none for training; give more documents" +
                                (o.separator.empty() ? " (more files, or --separator LINE to split files)" : "") +
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
    const auto ids = tokenizer->encode(std::string(text_of(files[doc.file]).substr(doc.begin, doc.end - doc.begin)));
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
                      {"separator", o.separator},  {"command", o.command}};
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
