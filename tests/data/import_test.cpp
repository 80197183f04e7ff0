// bla-data prepare from JSONL and from token files (llm.c/nanoGPT .bin, raw
// uint16): the documents it finds, the ids it keeps untouched, the errors it
// names, and a run that trains on imported tokens.
#include "bla/config/config.h"
#include "bla/data/documents.h"
#include "bla/data/prepare.h"
#include "bla/data/tokenizer.h"
#include "bla/train/trainer.h"
#include "bla/util/files.h"

#include "support/run_helpers.h"
#include "support/shard_reading.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

using bla::testing::TempDir;
using bla::testing::error_message;
using bla::testing::split_tokens;
using namespace bla::data;
namespace util = bla::util;

namespace {



// An llm.c token file: 256 int32 of header (magic, version, count), then the ids.
std::string llmc_file(const std::vector<int64_t>& ids, int32_t magic = 20240520, int32_t version = 1,
                      int64_t count = -1) {
  std::vector<int32_t> header(256, 0);
  header[0] = magic;
  header[1] = version;
  header[2] = static_cast<int32_t>(count < 0 ? static_cast<int64_t>(ids.size()) : count);
  std::string bytes(reinterpret_cast<const char*>(header.data()), header.size() * 4);
  for (int64_t id : ids) {
    if (version == 7) {
      const auto v = static_cast<uint32_t>(id);
      bytes.append(reinterpret_cast<const char*>(&v), 4);
    } else {
      const auto v = static_cast<uint16_t>(id);
      bytes.append(reinterpret_cast<const char*>(&v), 2);
    }
  }
  return bytes;
}

PrepareOptions token_options(const std::string& input, const std::string& out, const std::string& format,
                             int64_t vocab, int64_t end_of_document) {
  PrepareOptions o;
  o.inputs = {input};
  o.out_dir = out;
  o.format.name = format;
  o.format.vocab_size = vocab;
  o.format.end_of_document = end_of_document;
  o.val_fraction = 0;
  return o;
}

TEST(DataImport, JsonlDocumentsAreTheFieldOfEachLine) {
  TempDir tmp;
  util::write_file_atomically(tmp / "a.jsonl",
                              "{\"id\": 1, \"body\": \"first \\\"doc\\\"\\nline two\"}\n"
                              "\n"
                              "{\"body\": \"   \", \"id\": 2}\n"
                              "{\"body\": \"caf\\u00e9\"}\n"
                              "{\"body\": \"last, no newline\"}");
  PrepareOptions o;
  o.inputs = {tmp / "a.jsonl"};
  o.out_dir = tmp / "data";
  o.format.name = "jsonl";
  o.format.field = "body";
  o.val_fraction = 0;
  const ShardIndex index = prepare_shards(o);
  EXPECT_EQ(index.train.documents, 3) << "the blank line and the all-space document are dropped";
  std::vector<int64_t> expected;
  for (const std::string doc : {"first \"doc\"\nline two", "caf\xc3\xa9", "last, no newline"}) {
    for (int64_t id : ByteTokenizer().encode(doc)) expected.push_back(id);
    expected.push_back(ByteTokenizer::kEndOfDocument);
  }
  EXPECT_EQ(split_tokens(tmp / "data", index, index.train), expected);
  EXPECT_EQ(index.provenance["input_format"], "jsonl");
  EXPECT_EQ(index.provenance["field"], "body");
}

TEST(DataImport, JsonlErrorsNameTheFileLineAndField) {
  TempDir tmp;
  DocumentFormat jsonl;
  jsonl.name = "jsonl";
  util::write_file_atomically(tmp / "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"cut\n");
  EXPECT_EQ(error_message([&] { DocumentFile(tmp / "bad.jsonl", jsonl); }),
            tmp / "bad.jsonl" + ", line 2: not a JSON object (--format jsonl reads one object per line)");
  util::write_file_atomically(tmp / "field.jsonl", "{\"content\": \"x\"}\n");
  EXPECT_EQ(error_message([&] { DocumentFile(tmp / "field.jsonl", jsonl); }),
            tmp / "field.jsonl" + ", line 1: has no field 'text' (choose the text field with --field)");
  util::write_file_atomically(tmp / "type.jsonl", "{\"text\": 3}\n");
  EXPECT_EQ(error_message([&] { DocumentFile(tmp / "type.jsonl", jsonl); }),
            tmp / "type.jsonl" + ", line 1: field 'text' is not a string");
}

TEST(DataImport, LlmcTokensAreKeptAsTheyAreAndSplitAtTheEndOfDocument) {
  TempDir tmp;
  // As llm.c writes them: every document opens with the end-of-text id 50256.
  const std::vector<int64_t> ids = {50256, 15496, 995, 50256, 40, 1101, 50255, 50256, 7};
  util::write_file_atomically(tmp / "train.bin", llmc_file(ids));
  const ShardIndex index = prepare_shards(token_options(tmp / "train.bin", tmp / "data", "llmc", 50257, 50256));
  EXPECT_EQ(index.vocab_size, 50257);
  EXPECT_EQ(index.end_of_document, 50256);
  EXPECT_EQ(index.dtype, "uint16");
  EXPECT_EQ(index.tokenizer_kind, "ids");
  EXPECT_EQ(index.train.documents, 3);
  EXPECT_EQ(split_tokens(tmp / "data", index, index.train),
            (std::vector<int64_t>{15496, 995, 50256, 40, 1101, 50255, 50256, 7, 50256}));
}

TEST(DataImport, Llama3TokenFilesHoldUint32Ids) {
  TempDir tmp;
  const std::vector<int64_t> ids = {128000, 9906, 1917, 128001, 70000};
  util::write_file_atomically(tmp / "l3.bin", llmc_file(ids, 20240801, 7));
  const ShardIndex index = prepare_shards(token_options(tmp / "l3.bin", tmp / "data", "llmc", 128256, 128001));
  EXPECT_EQ(index.dtype, "uint32");
  EXPECT_EQ(split_tokens(tmp / "data", index, index.train),
            (std::vector<int64_t>{128000, 9906, 1917, 128001, 70000, 128001}));
}

TEST(DataImport, RawUint16TokenFiles) {
  TempDir tmp;
  const std::vector<uint16_t> ids = {5, 6, 9, 7, 9, 9, 8};
  util::write_file_atomically(tmp / "raw.bin", std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * 2));
  auto o = token_options(tmp / "raw.bin", tmp / "data", "uint16", 10, 9);
  const ShardIndex index = prepare_shards(o);
  EXPECT_EQ(index.train.documents, 3);
  EXPECT_EQ(split_tokens(tmp / "data", index, index.train), (std::vector<int64_t>{5, 6, 9, 7, 9, 8, 9}));
}

TEST(DataImport, TokenFileErrorsNameTheFileAndTheFix) {
  TempDir tmp;
  DocumentFormat llmc;
  llmc.name = "llmc";
  llmc.vocab_size = 50257;
  llmc.end_of_document = 50256;
  util::write_file_atomically(tmp / "big.bin", llmc_file({1, 2, 60000, 3}));
  EXPECT_EQ(error_message([&] { DocumentFile(tmp / "big.bin", llmc); }),
            tmp / "big.bin" + ": token 2 is id 60000, not below --vocab-size 50257");
  util::write_file_atomically(tmp / "magic.bin", llmc_file({1, 2}, 12345, 1));
  EXPECT_EQ(error_message([&] { DocumentFile(tmp / "magic.bin", llmc); }),
            tmp / "magic.bin" + ": not an llm.c token file (header magic 12345, version 1; expected 20240520 version 1 "
                                "or 20240801 version 7); for raw uint16 ids use --format uint16");
  util::write_file_atomically(tmp / "cut.bin", llmc_file({1, 2, 3}, 20240520, 1, 5));
  EXPECT_EQ(error_message([&] { DocumentFile(tmp / "cut.bin", llmc); }),
            tmp / "cut.bin" + ": the header says 5 tokens but the file holds 6 bytes of them (2 each): truncated or "
                              "not an llm.c file");
  util::write_file_atomically(tmp / "short.bin", "abc");
  EXPECT_EQ(error_message([&] { DocumentFile(tmp / "short.bin", llmc); }),
            tmp / "short.bin" + ": 3 bytes, shorter than an llm.c header (1024 bytes); for raw uint16 ids use "
                                "--format uint16");
  DocumentFormat raw = llmc;
  raw.name = "uint16";
  EXPECT_EQ(error_message([&] { DocumentFile(tmp / "short.bin", raw); }),
            tmp / "short.bin" + ": 3 bytes, an odd number: not a file of uint16 token ids");

  auto o = token_options(tmp / "big.bin", tmp / "data", "llmc", 0, 0);
  EXPECT_EQ(error_message([&] { prepare_shards(o); }),
            "--vocab-size: token files need the vocabulary size of their tokenizer (GPT-2: 50257)");
  o = token_options(tmp / "big.bin", tmp / "data", "llmc", 50257, 50257);
  EXPECT_EQ(error_message([&] { prepare_shards(o); }),
            "--end-of-document 50257: token files need the id that ends a document, below --vocab-size (50257; "
            "GPT-2: 50256)");
  o.format.name = "csv";
  EXPECT_EQ(error_message([&] { prepare_shards(o); }), "--format csv: must be text, jsonl, llmc or uint16");
}

TEST(DataImport, IdTokenizerWritesAndReadsIdsAsText) {
  const IdTokenizer ids(300, 299);
  EXPECT_EQ(ids.decode({17, 299, 4}), "17 4");
  EXPECT_EQ(ids.encode(" 17  4\n5 "), (std::vector<int64_t>{17, 4, 5}));
  EXPECT_EQ(error_message([&] { ids.encode("17 x"); }), "'x' is not a token id (this data has no tokenizer: give ids "
                                                   "separated by spaces, each below 300)");
  EXPECT_EQ(error_message([&] { ids.encode("300"); }), "'300' is not a token id (this data has no tokenizer: give ids "
                                                  "separated by spaces, each below 300)");
}

// A model trains on imported ids: a periodic stream is learned far below the
// uniform loss.
TEST(DataImport, ARunTrainsOnAnLlmcFile) {
  TempDir tmp;
  std::vector<int64_t> ids;
  for (int doc = 0; doc < 60; ++doc) {
    ids.push_back(299);
    for (int t = 0; t < 80; ++t) ids.push_back((doc % 3) * 50 + t % 7);
  }
  util::write_file_atomically(tmp / "train.bin", llmc_file(ids));
  auto o = token_options(tmp / "train.bin", tmp / "data", "llmc", 300, 299);
  o.val_fraction = 0.1;
  prepare_shards(o);
  const std::string yaml =
      "run: {name: ids, seed: 1, threads: 1, device: cpu}\n"
      "model: {d_model: 32, layers: 1, heads: 2, mixer: attention}\n"
      "data: {task: text, path: " + (tmp / "data") + ", seq_len: 32}\n"
      "train: {batch_size: 16, steps: 40, lr: 1.0e-2, warmup_steps: 5, log_every: 20, eval_examples: 64}\n";
  bla::train::RunOptions run;
  run.run_dir = tmp / "run";
  run.quiet = true;
  auto summary = bla::train::train(bla::config::parse_config(yaml, "ids.yaml"), run);
  EXPECT_LT(summary["test"]["loss"].get<double>(), std::log(300.0) - 3.0);
}

}  // namespace
