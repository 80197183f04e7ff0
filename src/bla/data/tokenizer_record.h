// A tokenizer as JSON, kept in a text checkpoint's metadata ("tokenizer"),
// so bla-generate and the exports encode and decode text without the data
// folder the model was trained on: the kind, the vocabulary, the
// end-of-document id and, for SentencePiece, the model file's bytes (base64).
#pragma once

#include "bla/data/tokenizer.h"

#include <nlohmann/json.hpp>

#include <memory>

namespace bla::data {

nlohmann::json tokenizer_record(const Tokenizer& tokenizer);
// The tokenizer a record describes. Throws std::runtime_error naming `where`
// when the record is not one.
std::unique_ptr<Tokenizer> tokenizer_from_record(const nlohmann::json& record, const std::string& where);

}  // namespace bla::data
