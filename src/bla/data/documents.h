// The documents of one input file of bla-data prepare, in its format:
//   text    plain text: the whole file is one document, or the runs of lines
//           between lines equal to a separator (fortune files use "%");
//   jsonl   one JSON object per line; its string field (default "text") is
//           one document;
//   llmc    an llm.c / nanoGPT token file: a header of 256 int32 (magic
//           20240520 version 1: uint16 tokens, GPT-2; magic 20240801
//           version 7: uint32 tokens, Llama 3; header[2] = the token count),
//           then the token ids;
//   uint16  raw little-endian uint16 token ids (nanoGPT's train.bin).
// Token files are split into documents at the end-of-document id and are not
// tokenised again; every id is checked against the vocabulary. Empty and
// all-white-space documents are dropped.
#pragma once

#include "bla/util/mapped_file.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bla::data {

struct DocumentFormat {
  std::string name = "text";  // text | jsonl | llmc | uint16
  std::string separator;      // text: "" is one document per file
  std::string field = "text"; // jsonl: the field holding a document's text
  // Token formats: the vocabulary the ids must lie below, and the id that
  // ends a document.
  int64_t vocab_size = 0;
  int64_t end_of_document = -1;

  bool is_tokens() const { return name == "llmc" || name == "uint16"; }
  // Throws std::invalid_argument naming the bad option (--format, --field, ...).
  void check() const;
};

class DocumentFile {
 public:
  // Maps `path` and finds its documents. Throws std::runtime_error naming the
  // file, and the line or token offset, when it does not hold `format`.
  DocumentFile(const std::string& path, const DocumentFormat& format);

  int64_t documents() const { return static_cast<int64_t>(ranges_.size()); }
  // A text document (text, jsonl).
  std::string text(int64_t document) const;
  // A token document (llmc, uint16), without its end-of-document id.
  std::vector<int64_t> tokens(int64_t document) const;
  // The whole file, for the provenance checksum.
  const util::MappedFile& file() const { return file_; }

 private:
  void find_text_documents();
  void find_jsonl_documents();
  void find_token_documents();
  int64_t token(size_t i) const;  // token formats: id i

  std::string path_;
  DocumentFormat format_;
  util::MappedFile file_;
  size_t token_offset_ = 0, token_bytes_ = 2, token_count_ = 0;
  std::vector<std::pair<size_t, size_t>> ranges_;  // bytes (text, jsonl lines) or token indices
};

// The documents of one file's text: byte ranges [begin, end).
std::vector<std::pair<size_t, size_t>> split_documents(std::string_view text, const std::string& separator);

}  // namespace bla::data
