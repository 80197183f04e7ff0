// bla-data prepare from text files (the other formats: import_test.cpp),
// the byte-level and SentencePiece tokenizers, and the bla-data program.
#include "bla/data/prepare.h"
#include "bla/data/tokenizer.h"
#include "bla/tasks/text.h"
#include "bla/util/checksum.h"
#include "bla/util/files.h"

#include "support/run_helpers.h"
#include "support/shard_reading.h"
#include "support/text_corpus.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <set>

using namespace bla::data;
using namespace bla::testing;
namespace util = bla::util;

namespace {

TEST(DataTokenizer, ByteRoundTripKeepsUtf8) {
  ByteTokenizer tokenizer;
  EXPECT_EQ(tokenizer.vocab_size(), 257);
  EXPECT_EQ(tokenizer.end_of_document(), 256);
  const std::string text = "Grüße, 世界! ✓ 😀\n\ttab \x01\xff";
  const auto ids = tokenizer.encode(text);
  ASSERT_EQ(ids.size(), text.size()) << "one id per byte";
  EXPECT_EQ(ids[2], 0xc3) << "ü is two UTF-8 bytes";
  for (int64_t id : ids) ASSERT_LT(id, 256);
  EXPECT_EQ(tokenizer.decode(ids), text);
  // End-of-document and padded ids decode to nothing.
  auto with_marks = ids;
  with_marks.push_back(256);
  with_marks.push_back(300);
  EXPECT_EQ(tokenizer.decode(with_marks), text);
  EXPECT_EQ(make_tokenizer("byte", "--tokenizer")->kind(), "byte");
}

TEST(DataPrepare, SeparatorLinesSplitFilesIntoDocuments) {
  const std::string text = "one\ntwo\n%\nthree\n%\r\n%\n  \n%\nfour";
  std::vector<std::string> documents;
  for (const auto& [begin, end] : split_documents(text, "%")) documents.push_back(text.substr(begin, end - begin));
  EXPECT_EQ(documents, (std::vector<std::string>{"one\ntwo\n", "three\n", "four"})) << "blank documents are dropped";
  EXPECT_EQ(split_documents(text, "").size(), 1u) << "no separator: the file is one document";
  EXPECT_TRUE(split_documents(" \n\n", "").empty());
}

TEST(DataPrepare, WritesShardsThatMatchTheirIndex) {
  TempDir tmp;
  const auto inputs = write_corpus(tmp, 3, 20);
  const auto index = prepare_shards(options_for(inputs, tmp / "data"));
  EXPECT_EQ(index.dtype, "uint16");
  EXPECT_EQ(index.vocab_size, 257);
  EXPECT_EQ(index.tokenizer_kind, "byte");
  EXPECT_EQ(index.val.documents, 12) << "round(0.2 * 60) documents";
  EXPECT_EQ(index.train.documents, 48);
  int64_t expected_tokens = 0;
  for (int k = 0; k < 60; ++k) expected_tokens += static_cast<int64_t>(document(k).size()) + 1;
  EXPECT_EQ(index.train.tokens + index.val.tokens, expected_tokens) << "each document's bytes and its end mark";
  EXPECT_GT(index.train.shards.size(), 1u) << "1000 tokens per shard";

  // index.json on disk says the same, and every shard has its size and checksum.
  const auto reread = read_index(tmp / "data");
  EXPECT_EQ(reread.to_json(), index.to_json());
  const auto json = nlohmann::json::parse(util::read_file(tmp / "data/index.json"));
  EXPECT_EQ(json["version"], 1);
  EXPECT_EQ(json["splits"]["val"]["documents"], 12);
  EXPECT_EQ(json["inputs"].size(), 3u);
  EXPECT_EQ(json["inputs"][0]["documents"], 20);
  for (const auto* split : {&index.train, &index.val}) {
    int64_t sum = 0;
    for (const auto& shard : split->shards) {
      const std::string bytes = util::read_file(tmp / ("data/" + shard.file));
      EXPECT_EQ(static_cast<int64_t>(bytes.size()), 2 * shard.tokens) << shard.file;
      EXPECT_LE(shard.tokens, 1000);
      EXPECT_EQ(util::fnv1a64(bytes), shard.checksum) << shard.file;
      sum += shard.tokens;
    }
    EXPECT_EQ(sum, split->tokens);
  }
  EXPECT_EQ(index.train.shards[0].file, "train-00000.bin");
  EXPECT_EQ(index.val.shards[0].file, "val-00000.bin");
}

TEST(DataPrepare, ValidationSplitIsWholeDocumentsDrawnFromTheSeed) {
  TempDir tmp;
  const auto inputs = write_corpus(tmp, 2, 30);
  auto options = options_for(inputs, tmp / "a");
  const auto a = prepare_shards(options);
  options.out_dir = tmp / "b";
  const auto b = prepare_shards(options);
  options.out_dir = tmp / "c";
  options.seed = 8;
  const auto c = prepare_shards(options);

  std::set<std::string> all;
  for (int k = 0; k < 60; ++k) all.insert(document(k));
  const auto train = split_documents_text(tmp / "a", a, a.train), val = split_documents_text(tmp / "a", a, a.val);
  EXPECT_EQ(val.size(), 12u);
  EXPECT_EQ(train.size(), 48u);
  std::set<std::string> both = train;
  both.insert(val.begin(), val.end());
  EXPECT_EQ(both, all) << "every document is in one split, whole";
  for (const auto& d : val) EXPECT_EQ(train.count(d), 0u) << "disjoint: " << d;

  EXPECT_EQ(split_documents_text(tmp / "b", b, b.val), val) << "same seed, same split";
  EXPECT_EQ(util::read_file(tmp / "a/val-00000.bin"), util::read_file(tmp / "b/val-00000.bin"));
  EXPECT_EQ(a.val.shards[0].checksum, b.val.shards[0].checksum);
  EXPECT_NE(split_documents_text(tmp / "c", c, c.val), val) << "another seed, another split";
}

TEST(DataPrepare, Uint32ShardsHoldTheSameTokens) {
  TempDir tmp;
  const auto inputs = write_corpus(tmp, 1, 20);
  auto options = options_for(inputs, tmp / "u16");
  const auto narrow = prepare_shards(options);
  options.out_dir = tmp / "u32";
  options.dtype = "uint32";
  const auto wide = prepare_shards(options);
  EXPECT_EQ(narrow.dtype, "uint16");
  EXPECT_EQ(wide.dtype, "uint32");
  EXPECT_EQ(nlohmann::json::parse(util::read_file(tmp / "u32/index.json"))["dtype"], "uint32");
  ASSERT_EQ(wide.train.shards.size(), narrow.train.shards.size());
  EXPECT_EQ(util::read_file(tmp / "u32/train-00000.bin").size(), 4u * static_cast<size_t>(wide.train.shards[0].tokens));
  EXPECT_EQ(split_tokens(tmp / "u32", wide, wide.train), split_tokens(tmp / "u16", narrow, narrow.train));
  EXPECT_EQ(dtype_for_vocab(65536), "uint16");
  EXPECT_EQ(dtype_for_vocab(65537), "uint32");
  // The text task reads both alike.
  bla::tasks::TextTask a({tmp / "u16", 16}), b({tmp / "u32", 16});
  EXPECT_EQ(a.window(bla::tasks::Split::kTrain, 3), b.window(bla::tasks::Split::kTrain, 3));
}

TEST(DataPrepare, RepreparingAFolderRemovesShardsItNoLongerLists) {
  TempDir tmp;
  const auto inputs = write_corpus(tmp, 2, 20);
  auto options = options_for(inputs, tmp / "data");
  options.shard_tokens = 300;
  const auto many = prepare_shards(options);
  ASSERT_GT(many.train.shards.size(), 3u);
  options.shard_tokens = 100000;
  prepare_shards(options);
  EXPECT_EQ(util::list_directory(tmp / "data"),
            (std::vector<std::string>{"index.json", "train-00000.bin", "val-00000.bin"}));
}

TEST(DataPrepare, BadOptionsNameTheOption) {
  TempDir tmp;
  const auto inputs = write_corpus(tmp, 1, 3);
  auto options = options_for(inputs, tmp / "data");
  options.format.separator = "";
  EXPECT_EQ(error_message([&] { prepare_shards(options); }),
            "--val-fraction 0.2: 1 document(s) leave none for training; give more documents (more files, or "
            "--separator LINE to split files) or a smaller --val-fraction");
  options = options_for({tmp / "missing.txt"}, tmp / "data");
  EXPECT_EQ(error_message([&] { prepare_shards(options); }), "--input " + (tmp / "missing.txt") + ": no such file");
  options = options_for(inputs, tmp / "data");
  options.val_fraction = 1.0;
  EXPECT_EQ(error_message([&] { prepare_shards(options); }), "--val-fraction 1: must be in [0, 1)");
}

// ---- SentencePiece (only in builds that have it) ----

TEST(DataSentencePiece, MissingSupportSaysHowToGetIt) {
  EXPECT_EQ(sentencepiece_missing_message("--tokenizer", "m.model"),
            "--tokenizer m.model: this build of bla-train has no SentencePiece support; install it (apt-get install "
            "libsentencepiece-dev) and rebuild (scripts/build.sh), or use the byte-level tokenizer (--tokenizer byte)");
  if (sentencepiece_available()) GTEST_SKIP() << "this build has SentencePiece";
  EXPECT_EQ(error_message([] { make_tokenizer("m.model", "--tokenizer"); }),
            sentencepiece_missing_message("--tokenizer", "m.model"));
}

TEST(DataSentencePiece, TrainedModelRoundTripsAndPreparesShards) {
  if (!sentencepiece_available()) GTEST_SKIP() << "built without libsentencepiece";
  TempDir tmp;
  std::string lines;
  for (int k = 0; k < 400; ++k) lines += document(k);
  util::write_file_atomically(tmp / "lines.txt", lines);
  train_sentencepiece({{tmp / "lines.txt"}, tmp / "tiny", 120, "unigram"});
  const auto tokenizer = make_tokenizer(tmp / "tiny.model", "--tokenizer");
  EXPECT_EQ(tokenizer->kind(), "sentencepiece");
  EXPECT_EQ(tokenizer->vocab_size(), 120);
  const std::string text = "Note 12: the cat looked at the river.";
  const auto ids = tokenizer->encode(text);
  EXPECT_LT(ids.size(), text.size()) << "pieces are longer than bytes";
  for (int64_t id : ids) ASSERT_LT(id, tokenizer->vocab_size());
  EXPECT_EQ(tokenizer->decode(ids), text);

  auto options = options_for(write_corpus(tmp, 2, 20), tmp / "data");
  options.tokenizer = tmp / "tiny.model";
  const auto index = prepare_shards(options);
  EXPECT_EQ(index.tokenizer_kind, "sentencepiece");
  EXPECT_EQ(index.tokenizer_model, tmp / "tiny.model");
  EXPECT_EQ(index.vocab_size, 120);
  EXPECT_EQ(index.end_of_document, tokenizer->end_of_document());
  for (int64_t id : split_tokens(tmp / "data", index, index.train)) ASSERT_LT(id, 120);
  EXPECT_EQ(error_message([&] { make_tokenizer(tmp / "none.model", "--tokenizer"); }),
            "--tokenizer " + (tmp / "none.model") + ": no such file (give a SentencePiece .model file, or byte)");
}

// ---- bla-data ----

TEST(DataCommand, BlaDataPrepareWritesTheFolderAndRecordsItsCommand) {
  TempDir tmp;
  const auto inputs = write_corpus(tmp, 2, 10);
  const std::string exe = std::string(BLA_BINARY_DIR) + "/src/bla-data";
  const std::string command = exe + " prepare --input " + inputs[0] + " " + inputs[1] + " --out " + (tmp / "data") +
                              " --separator % --val-fraction 0.1 --seed 3 2>" + (tmp / "stderr.txt");
  ASSERT_EQ(WEXITSTATUS(std::system(command.c_str())), 0) << util::read_file(tmp / "stderr.txt");
  const auto index = read_index(tmp / "data");
  EXPECT_EQ(index.val.documents, 2);
  EXPECT_EQ(index.train.documents, 18);
  EXPECT_EQ(index.provenance["command"], "bla-data prepare --input " + inputs[0] + " " + inputs[1] + " --out " +
                                             (tmp / "data") + " --separator % --val-fraction 0.1 --seed 3");
  EXPECT_NE(util::read_file(tmp / "stderr.txt").find("train: 18 documents"), std::string::npos)
      << util::read_file(tmp / "stderr.txt");
  // Bad options exit with 2 and name the option.
  const std::string bad = exe + " prepare --input " + inputs[0] + " --out " + (tmp / "x") + " 2>" + (tmp / "stderr.txt");
  EXPECT_EQ(WEXITSTATUS(std::system(bad.c_str())), 2);
  EXPECT_EQ(util::read_file(tmp / "stderr.txt"),
            "bla-data: --val-fraction 0.01: 1 document(s) leave none for training; give more documents (more files, "
            "or --separator LINE to split files) or a smaller --val-fraction\n");
}

}  // namespace
