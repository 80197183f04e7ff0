#include "bla/data/documents.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <stdexcept>

namespace bla::data {

namespace {

constexpr int32_t kLlmcGpt2Magic = 20240520, kLlmcGpt2Version = 1;      // uint16 tokens
constexpr int32_t kLlmcLlama3Magic = 20240801, kLlmcLlama3Version = 7;  // uint32 tokens
constexpr size_t kLlmcHeaderBytes = 256 * 4;

bool blank(const char* begin, const char* end) {
  return std::all_of(begin, end, [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

std::string_view text_of(const util::MappedFile& file) {
  return {reinterpret_cast<const char*>(file.data()), file.size()};
}

int32_t int32_at(const util::MappedFile& file, size_t index) {
  int32_t value;
  std::memcpy(&value, file.data() + index * 4, 4);
  return value;
}

}  // namespace

void DocumentFormat::check() const {
  auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (name != "text" && name != "jsonl" && name != "llmc" && name != "uint16") {
    fail("--format " + name + ": must be text, jsonl, llmc or uint16");
  }
  if (separator.find('\n') != std::string::npos) fail("--separator: a separator is one line, without a newline");
  if (!separator.empty() && name != "text") fail("--separator: splits text files only (--format text)");
  if (name == "jsonl" && field.empty()) fail("--field: give the JSON field that holds a document's text");
  if (is_tokens()) {
    if (vocab_size < 1) fail("--vocab-size: token files need the vocabulary size of their tokenizer (GPT-2: 50257)");
    if (end_of_document < 0 || end_of_document >= vocab_size) {
      fail("--end-of-document " + std::to_string(end_of_document) + ": token files need the id that ends a document, "
           "below --vocab-size (" + std::to_string(vocab_size) + "; GPT-2: 50256)");
    }
  }
}

DocumentFile::DocumentFile(const std::string& path, const DocumentFormat& format)
    : path_(path), format_(format), file_(path) {
  if (format.name == "text") {
    find_text_documents();
  } else if (format.name == "jsonl") {
    find_jsonl_documents();
  } else {
    find_token_documents();
  }
}

void DocumentFile::find_text_documents() { ranges_ = split_documents(text_of(file_), format_.separator); }

void DocumentFile::find_jsonl_documents() {
  const std::string_view text = text_of(file_);
  int64_t line_number = 0;
  for (size_t line = 0; line < text.size();) {
    const size_t newline = text.find('\n', line);
    const size_t end = newline == std::string::npos ? text.size() : newline;
    const size_t next = newline == std::string::npos ? text.size() : newline + 1;
    ++line_number;
    if (!blank(text.data() + line, text.data() + end)) {
      const std::string where = path_ + ", line " + std::to_string(line_number);
      nlohmann::json object;
      try {
        object = nlohmann::json::parse(text.substr(line, end - line));
      } catch (const nlohmann::json::exception&) {
        throw std::runtime_error(where + ": not a JSON object (--format jsonl reads one object per line)");
      }
      if (!object.is_object() || !object.contains(format_.field)) {
        throw std::runtime_error(where + ": has no field '" + format_.field + "' (choose the text field with --field)");
      }
      if (!object.at(format_.field).is_string()) {
        throw std::runtime_error(where + ": field '" + format_.field + "' is not a string");
      }
      const auto& value = object.at(format_.field).get_ref<const std::string&>();
      if (!blank(value.data(), value.data() + value.size())) ranges_.emplace_back(line, end);
    }
    line = next;
  }
}

void DocumentFile::find_token_documents() {
  if (format_.name == "llmc") {
    if (file_.size() < kLlmcHeaderBytes) {
      throw std::runtime_error(path_ + ": " + std::to_string(file_.size()) +
                               " bytes, shorter than an llm.c header (1024 bytes); for raw uint16 ids use --format uint16");
    }
    const int32_t magic = int32_at(file_, 0), version = int32_at(file_, 1), count = int32_at(file_, 2);
    if (magic == kLlmcGpt2Magic && version == kLlmcGpt2Version) {
      token_bytes_ = 2;
    } else if (magic == kLlmcLlama3Magic && version == kLlmcLlama3Version) {
      token_bytes_ = 4;
    } else {
      throw std::runtime_error(path_ + ": not an llm.c token file (header magic " + std::to_string(magic) +
                               ", version " + std::to_string(version) + "; expected 20240520 version 1 or 20240801 "
                               "version 7); for raw uint16 ids use --format uint16");
    }
    token_offset_ = kLlmcHeaderBytes;
    const size_t payload = file_.size() - kLlmcHeaderBytes;
    if (count < 0 || payload != static_cast<size_t>(count) * token_bytes_) {
      throw std::runtime_error(path_ + ": the header says " + std::to_string(count) + " tokens but the file holds " +
                               std::to_string(payload) + " bytes of them (" + std::to_string(token_bytes_) +
                               " each): truncated or not an llm.c file");
    }
    token_count_ = static_cast<size_t>(count);
  } else {
    if (file_.size() % 2 != 0) {
      throw std::runtime_error(path_ + ": " + std::to_string(file_.size()) +
                               " bytes, an odd number: not a file of uint16 token ids");
    }
    token_bytes_ = 2;
    token_count_ = file_.size() / 2;
  }
  size_t begin = 0;
  for (size_t i = 0; i < token_count_; ++i) {
    const int64_t id = token(i);
    if (id >= format_.vocab_size) {
      throw std::runtime_error(path_ + ": token " + std::to_string(i) + " is id " + std::to_string(id) +
                               ", not below --vocab-size " + std::to_string(format_.vocab_size));
    }
    if (id == format_.end_of_document) {
      if (i > begin) ranges_.emplace_back(begin, i);
      begin = i + 1;
    }
  }
  if (token_count_ > begin) ranges_.emplace_back(begin, token_count_);
}

int64_t DocumentFile::token(size_t i) const {
  const unsigned char* at = file_.data() + token_offset_ + i * token_bytes_;
  if (token_bytes_ == 2) {
    uint16_t v;
    std::memcpy(&v, at, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, at, 4);
  return v;
}

std::string DocumentFile::text(int64_t document) const {
  const auto [begin, end] = ranges_.at(static_cast<size_t>(document));
  const std::string_view span = text_of(file_).substr(begin, end - begin);
  if (format_.name == "jsonl") return nlohmann::json::parse(span).at(format_.field).get<std::string>();
  return std::string(span);
}

std::vector<int64_t> DocumentFile::tokens(int64_t document) const {
  const auto [begin, end] = ranges_.at(static_cast<size_t>(document));
  std::vector<int64_t> ids;
  ids.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) ids.push_back(token(i));
  return ids;
}

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

}  // namespace bla::data
