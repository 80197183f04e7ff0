#include "bla/data/tokenizer.h"

#include <sstream>
#include <stdexcept>

namespace bla::data {

std::vector<int64_t> ByteTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (unsigned char byte : text) ids.push_back(byte);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  text.reserve(ids.size());
  for (int64_t id : ids) {
    if (id >= 0 && id < 256) text.push_back(static_cast<char>(static_cast<unsigned char>(id)));
  }
  return text;
}

std::vector<int64_t> IdTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  std::istringstream words(text);
  for (std::string word; words >> word;) {
    const bool digits = word.size() <= 18 && word.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoll(word) >= vocab_size_) {
      throw std::invalid_argument("'" + word + "' is not a token id (this data has no tokenizer: give ids separated "
                                  "by spaces, each below " + std::to_string(vocab_size_) + ")");
    }
    ids.push_back(std::stoll(word));
  }
  return ids;
}

std::string IdTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  for (int64_t id : ids) {
    if (id == end_of_document_) continue;
    text += (text.empty() ? "" : " ") + std::to_string(id);
  }
  return text;
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec, const std::string& key) {
  if (spec == "byte") return std::make_unique<ByteTokenizer>();
  return load_sentencepiece(spec, key);
}

std::string sentencepiece_missing_message(const std::string& key, const std::string& path) {
  return key + " " + path +
         ": this build of bla-train has no SentencePiece support; install it (apt-get install libsentencepiece-dev) "
         "and rebuild (scripts/build.sh), or use the byte-level tokenizer (" + key + " byte)";
}

}  // namespace bla::data
