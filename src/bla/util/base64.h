// Base64 (RFC 4648, with padding): binary data inside JSON, such as a
// SentencePiece model stored in a checkpoint's metadata.
#pragma once

#include <string>

namespace bla::util {

std::string base64_encode(const std::string& bytes);
// Throws std::invalid_argument when `text` is not padded base64.
std::string base64_decode(const std::string& text);

}  // namespace bla::util
