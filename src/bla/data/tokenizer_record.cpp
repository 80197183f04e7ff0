#include "bla/data/tokenizer_record.h"

#include "bla/util/base64.h"
#include "bla/util/files.h"

#include <stdexcept>

namespace bla::data {

nlohmann::json tokenizer_record(const Tokenizer& tokenizer) {
  nlohmann::json record = {{"kind", tokenizer.kind()},
                           {"vocab_size", tokenizer.vocab_size()},
                           {"end_of_document", tokenizer.end_of_document()}};
  if (tokenizer.kind() == "sentencepiece") {
    record["model_file"] = util::file_name(tokenizer.model_path());
    record["model_base64"] = util::base64_encode(util::read_file(tokenizer.model_path()));
  }
  return record;
}

std::unique_ptr<Tokenizer> tokenizer_from_record(const nlohmann::json& record, const std::string& where) {
  try {
    const std::string kind = record.at("kind").get<std::string>();
    if (kind == "byte") return std::make_unique<ByteTokenizer>();
    if (kind == "ids") {
      return std::make_unique<IdTokenizer>(record.at("vocab_size").get<int64_t>(),
                                           record.at("end_of_document").get<int64_t>());
    }
    if (kind == "sentencepiece") {
      // libsentencepiece loads models from files: a private copy, removed once loaded.
      const std::string folder = util::make_temp_directory("bla-tokenizer");
      const std::string path = util::join_path(folder, record.at("model_file").get<std::string>());
      try {
        util::write_file_atomically(path, util::base64_decode(record.at("model_base64").get<std::string>()));
        auto tokenizer = load_sentencepiece(path, where);
        util::remove_tree(folder);
        return tokenizer;
      } catch (...) {
        util::remove_tree(folder);
        throw;
      }
    }
    throw std::runtime_error(where + ": unknown tokenizer kind '" + kind + "' (this bla-train knows byte, ids and "
                             "sentencepiece)");
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(where + ": the stored tokenizer is incomplete (" + std::string(e.what()) + ")");
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(where + ": the stored tokenizer is damaged (" + std::string(e.what()) + ")");
  }
}

}  // namespace bla::data
