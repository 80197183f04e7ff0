#include "bla/util/base64.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace {

using bla::util::base64_decode;
using bla::util::base64_encode;

TEST(Base64, TheRfc4648TestVectors) {
  const std::pair<std::string, std::string> vectors[] = {{"", ""},         {"f", "Zg=="},     {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : vectors) {
    EXPECT_EQ(base64_encode(plain), coded);
    EXPECT_EQ(base64_decode(coded), plain);
  }
}

TEST(Base64, EveryByteRoundTrips) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  for (size_t n = 0; n <= bytes.size(); n += 37) EXPECT_EQ(base64_decode(base64_encode(bytes.substr(0, n))), bytes.substr(0, n));
}

TEST(Base64, BadTextIsRejected) {
  auto message = [](const std::string& text) {
    try {
      base64_decode(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(message("Zg="), "base64: the length is not a multiple of 4");
  EXPECT_EQ(message("Z!=="), "base64: an invalid character at 1");
  EXPECT_EQ(message("Zg==Zg=="), "base64: an invalid character at 2") << "padding only at the end";
}

}  // namespace
