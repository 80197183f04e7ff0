// Text to token ids and back.
//
// Byte-level (the default, no files): ids 0..255 are the bytes of the UTF-8
// text, 256 marks the end of a document; vocabulary 257. Ids: data imported
// as token ids (llm.c/nanoGPT files) whose tokenizer is not here; text is the
// ids written out, separated by spaces. SentencePiece: a
// model file trained elsewhere (or with bla-data train-tokenizer), read
// through libsentencepiece when the build has it; its end-of-document id is
// the model's </s> (eos), or one id past its pieces when it has none.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bla::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // "byte", "ids" or "sentencepiece".
  virtual std::string kind() const = 0;
  // The model file ("" for byte).
  virtual std::string model_path() const { return ""; }
  // Every id is < vocab_size(), end_of_document() included.
  virtual int64_t vocab_size() const = 0;
  virtual int64_t end_of_document() const = 0;
  // The ids of `text`, without an end-of-document mark.
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  // The text of `ids`; ids that stand for no text (end-of-document, ids past
  // the vocabulary that a padded model may sample) give nothing.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
};

class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int64_t kEndOfDocument = 256;
  static constexpr int64_t kVocabSize = 257;
  std::string kind() const override { return "byte"; }
  int64_t vocab_size() const override { return kVocabSize; }
  int64_t end_of_document() const override { return kEndOfDocument; }
  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
};

// Token ids as text: "17 4 5" encodes to {17, 4, 5}; decoding writes the ids
// (but the end-of-document id) separated by spaces.
class IdTokenizer : public Tokenizer {
 public:
  IdTokenizer(int64_t vocab_size, int64_t end_of_document)
      : vocab_size_(vocab_size), end_of_document_(end_of_document) {}
  std::string kind() const override { return "ids"; }
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t end_of_document() const override { return end_of_document_; }
  // Throws std::invalid_argument naming the first word that is not an id below vocab_size.
  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;

 private:
  int64_t vocab_size_, end_of_document_;
};

// `spec` is "byte" or the path of a SentencePiece model. `key` names where
// the spec came from (e.g. "--tokenizer") in error messages, which say what
// to do (a missing file, a build without SentencePiece).
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec, const std::string& key);

// ---- SentencePiece (src/bla/data/sentencepiece.cpp) ----

// Whether this build links libsentencepiece (found by cmake/BlaDependencies.cmake).
bool sentencepiece_available();

// Loads a SentencePiece model; throws std::runtime_error naming `key` and
// `path` (and, in a build without SentencePiece, how to get it).
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path, const std::string& key);

struct SentencepieceTraining {
  std::vector<std::string> inputs;  // text files, one sentence per line
  std::string model_prefix;         // writes <prefix>.model and <prefix>.vocab
  int64_t vocab_size = 8000;
  std::string model_type = "unigram";  // unigram, bpe, char, word
};

// Trains a model with the library's trainer. The text is kept as it is (no
// NFKC normalisation, white space kept) so decode(encode(text)) gives back
// any text made of characters the model saw. Throws std::runtime_error.
void train_sentencepiece(const SentencepieceTraining& options);

// The message for a build without SentencePiece: names `key` and `path`.
std::string sentencepiece_missing_message(const std::string& key, const std::string& path);

}  // namespace bla::data
