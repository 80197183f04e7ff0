// A tokenizer stored in a checkpoint's metadata and made again from it.
#include "bla/data/tokenizer_record.h"

#include <gtest/gtest.h>

namespace {

using namespace bla::data;

std::string error_of(const nlohmann::json& record) {
  try {
    tokenizer_from_record(record, "checkpoint c.ckpt");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TokenizerRecord, ByteAndIdTokenizersRoundTrip) {
  const auto byte_record = tokenizer_record(ByteTokenizer());
  EXPECT_EQ(byte_record, (nlohmann::json{{"kind", "byte"}, {"vocab_size", 257}, {"end_of_document", 256}}));
  const auto byte = tokenizer_from_record(byte_record, "c");
  EXPECT_EQ(byte->decode(byte->encode("caf\xc3\xa9")), "caf\xc3\xa9");

  const auto ids = tokenizer_from_record(tokenizer_record(IdTokenizer(300, 299)), "c");
  EXPECT_EQ(ids->kind(), "ids");
  EXPECT_EQ(ids->vocab_size(), 300);
  EXPECT_EQ(ids->end_of_document(), 299);
}

TEST(TokenizerRecord, ADamagedRecordNamesTheCheckpoint) {
  EXPECT_EQ(error_of({{"kind", "wordpiece"}}),
            "checkpoint c.ckpt: unknown tokenizer kind 'wordpiece' (this bla-train knows byte, ids and sentencepiece)");
  EXPECT_EQ(error_of({{"kind", "ids"}, {"vocab_size", 300}}).rfind("checkpoint c.ckpt: the stored tokenizer is incomplete", 0),
            0u);
  EXPECT_EQ(error_of({{"kind", "sentencepiece"}, {"model_file", "m.model"}, {"model_base64", "Zg="}}),
            "checkpoint c.ckpt: the stored tokenizer is damaged (base64: the length is not a multiple of 4)");
}

}  // namespace
