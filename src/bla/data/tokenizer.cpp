#include "bla/data/tokenizer.h"

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
