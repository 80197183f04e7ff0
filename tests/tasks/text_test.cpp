#include "bla/config/config.h"
#include "bla/data/prepare.h"
#include "bla/data/tokenizer.h"
#include "bla/model/lm.h"
#include "bla/tasks/text.h"
#include "bla/train/checkpoint.h"
#include "bla/train/evaluate.h"
#include "bla/train/restore.h"
#include "bla/train/trainer.h"
#include "bla/util/checksum.h"
#include "bla/util/files.h"

#include "support/run_helpers.h"
#include "support/shard_reading.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>

using bla::testing::TempDir;
using bla::testing::error_message;
using bla::testing::split_tokens;
using namespace bla::data;
namespace util = bla::util;

namespace {

// Document k of the test corpus: distinct, English-like, 60..120 bytes.
std::string document(int k) {
  static const char* subjects[] = {"the cat", "a dog", "my friend", "the old man", "our teacher"};
  static const char* verbs[] = {"sat on", "looked at", "walked past", "talked about", "wrote to"};
  static const char* objects[] = {"the mat", "a tree", "the river", "his house", "the small garden"};
  std::string text = "Note " + std::to_string(k) + ":";
  for (int s = 0; s < 2 + k % 2; ++s) {
    text += std::string(" ") + subjects[(k + s) % 5] + " " + verbs[(k * 3 + s) % 5] + " " + objects[(k * 7 + s) % 5] + ".";
  }
  return text + "\n";
}

// Writes `files` text files of `per_file` documents each, separated by "%" lines.
std::vector<std::string> write_corpus(const TempDir& tmp, int files, int per_file) {
  std::vector<std::string> paths;
  int k = 0;
  for (int f = 0; f < files; ++f) {
    std::string text;
    for (int d = 0; d < per_file; ++d) text += (d > 0 ? "%\n" : "") + document(k++);
    paths.push_back(tmp / ("corpus-" + std::to_string(f) + ".txt"));
    util::write_file_atomically(paths.back(), text);
  }
  return paths;
}

PrepareOptions options_for(const std::vector<std::string>& inputs, const std::string& out) {
  PrepareOptions o;
  o.inputs = inputs;
  o.out_dir = out;
  o.format.separator = "%";
  o.val_fraction = 0.2;
  o.seed = 7;
  o.shard_tokens = 1000;
  return o;
}


// The documents of a split: its tokens cut at the end-of-document id, decoded.
std::set<std::string> split_documents_text(const std::string& dir, const ShardIndex& index, const SplitInfo& split) {
  std::set<std::string> documents;
  std::vector<int64_t> current;
  for (int64_t id : split_tokens(dir, index, split)) {
    if (id == index.end_of_document) {
      documents.insert(ByteTokenizer().decode(current));
      current.clear();
    } else {
      current.push_back(id);
    }
  }
  EXPECT_TRUE(current.empty()) << "a split ends with an end-of-document id";
  return documents;
}


TEST(TextTokenizer, ByteRoundTripKeepsUtf8) {
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

TEST(TextPrepare, SeparatorLinesSplitFilesIntoDocuments) {
  const std::string text = "one\ntwo\n%\nthree\n%\r\n%\n  \n%\nfour";
  std::vector<std::string> documents;
  for (const auto& [begin, end] : split_documents(text, "%")) documents.push_back(text.substr(begin, end - begin));
  EXPECT_EQ(documents, (std::vector<std::string>{"one\ntwo\n", "three\n", "four"})) << "blank documents are dropped";
  EXPECT_EQ(split_documents(text, "").size(), 1u) << "no separator: the file is one document";
  EXPECT_TRUE(split_documents(" \n\n", "").empty());
}

TEST(TextPrepare, WritesShardsThatMatchTheirIndex) {
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

TEST(TextPrepare, ValidationSplitIsWholeDocumentsDrawnFromTheSeed) {
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

TEST(TextPrepare, Uint32ShardsHoldTheSameTokens) {
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

TEST(TextPrepare, RepreparingAFolderRemovesShardsItNoLongerLists) {
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

TEST(TextPrepare, BadOptionsNameTheOption) {
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

// ---- The text task ----

class TextTaskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto options = options_for(write_corpus(tmp_, 2, 40), dir_);
    options.shard_tokens = 700;  // several shards, windows must not cross them
    options.command = "bla-data prepare --out " + dir_;
    index_ = prepare_shards(options);
  }
  TempDir tmp_;
  std::string dir_ = tmp_ / "data";
  ShardIndex index_;
};

TEST_F(TextTaskTest, BatchesAreTheNextTokenShiftOfTheShards) {
  const int64_t L = 24;
  bla::tasks::TextTask task({dir_, L});
  EXPECT_EQ(task.vocab_size(), 257);
  EXPECT_EQ(task.seq_len(), L);
  EXPECT_EQ(task.headline_metric(), "perplexity");
  // Windows of L + 1 tokens at offsets 0, L, 2L, ... of each shard.
  std::vector<std::vector<int64_t>> expected;
  for (const auto& shard : index_.train.shards) {
    const auto tokens = split_tokens(dir_, index_, {0, shard.tokens, {shard}});
    for (int64_t at = 0; at + L + 1 <= shard.tokens; at += L) {
      expected.emplace_back(tokens.begin() + at, tokens.begin() + at + L + 1);
    }
  }
  ASSERT_EQ(task.num_examples(bla::tasks::Split::kTrain), static_cast<int64_t>(expected.size()));
  EXPECT_GT(task.num_examples(bla::tasks::Split::kTest), 0) << "the test split is the validation split";
  std::vector<int64_t> indices = {5, 0, static_cast<int64_t>(expected.size()) - 1, 17};
  auto batch = task.batch(bla::tasks::Split::kTrain, indices);
  ASSERT_EQ(batch.inputs.sizes(), (std::vector<int64_t>{4, L}));
  ASSERT_EQ(batch.targets.sizes(), (std::vector<int64_t>{4, L}));
  for (size_t b = 0; b < indices.size(); ++b) {
    const auto& window = expected[static_cast<size_t>(indices[b])];
    for (int64_t t = 0; t < L; ++t) {
      ASSERT_EQ(batch.inputs[b][t].item<int64_t>(), window[t]) << "row " << b << " position " << t;
      ASSERT_EQ(batch.targets[b][t].item<int64_t>(), window[t + 1]) << "every position is supervised";
    }
  }
}

TEST_F(TextTaskTest, TruncatedShardIsNamedWithTheFix) {
  const std::string shard = dir_ + "/train-00001.bin";
  std::string bytes = util::read_file(shard);
  util::write_file_atomically(shard, bytes.substr(0, bytes.size() - 10));
  EXPECT_EQ(error_message([&] { bla::tasks::TextTask({dir_, 16}); }),
            shard + " has " + std::to_string(bytes.size() - 10) + " bytes, but " + dir_ + "/index.json says 700 uint16 "
            "tokens (1400 bytes): the file is truncated or was changed; prepare the folder again: bla-data prepare --out " +
            dir_);
}

TEST_F(TextTaskTest, CorruptedShardIsNamedWithTheFix) {
  const std::string shard = dir_ + "/val-00000.bin";
  std::string bytes = util::read_file(shard);
  bytes[3] ^= 1;
  util::write_file_atomically(shard, bytes);
  EXPECT_EQ(error_message([&] { bla::tasks::TextTask({dir_, 16}); }),
            shard + " has checksum " + util::hex64(util::fnv1a64(bytes)) + ", but " + dir_ + "/index.json says " +
            util::hex64(index_.val.shards[0].checksum) +
            ": the file is corrupt or was changed; prepare the folder again: bla-data prepare --out " + dir_);
}

TEST_F(TextTaskTest, MissingFilesAreNamed) {
  util::remove_file(dir_ + "/train-00000.bin");
  EXPECT_EQ(error_message([&] { bla::tasks::TextTask({dir_, 16}); }),
            dir_ + "/train-00000.bin is missing (" + dir_ +
            "/index.json lists it); prepare the folder again: bla-data prepare --out " + dir_);
  EXPECT_EQ(error_message([&] { bla::tasks::TextTask({tmp_ / "nothing", 16}); }),
            tmp_ / "nothing/index.json not found: " + (tmp_ / "nothing") +
            " is not a prepared text folder; make one with bla-data prepare --input FILES... --out " + (tmp_ / "nothing"));
}

TEST_F(TextTaskTest, ConfigErrorsNameTheKeyAndLine) {
  auto make = [&](const std::string& data) {
    auto config = bla::config::parse_config(
        "run: {device: cpu}\nmodel: {mixer: attention}\ntrain: {steps: 1}\ndata:\n  task: text\n" + data, "cfg.yaml");
    return error_message([&] { bla::tasks::make_task(*config.data, 0); });
  };
  EXPECT_EQ(make("  seq_len: 16\n"),
            "cfg.yaml, line 5: data.path: is required: the folder bla-data prepare wrote (e.g. build/data/fortunes, "
            "made by scripts/prepare_text_corpus.sh)");
  EXPECT_EQ(make("  path: " + dir_ + "\n  seq_len: 5000\n"),
            "cfg.yaml, line 6: data.path: the train split of " + dir_ +
            " has no window of seq_len + 1 = 5001 tokens within one shard (" + std::to_string(index_.train.tokens) +
            " tokens in " + std::to_string(index_.train.shards.size()) +
            " shard(s)); lower data.seq_len, or prepare the folder with more text");
}

// ---- Token ids and shards that change under a run ----

// index.json of the folder, edited by `edit`.
void edit_index(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto json = nlohmann::json::parse(util::read_file(dir + "/index.json"));
  edit(json);
  util::write_file_atomically(dir + "/index.json", json.dump(2));
}

TEST_F(TextTaskTest, EndOfDocumentOutsideTheVocabularyIsRejected) {
  edit_index(dir_, [](nlohmann::json& j) { j["tokenizer"]["end_of_document"] = 99999; });
  EXPECT_EQ(error_message([&] { bla::tasks::TextTask({dir_, 16}); }),
            dir_ + "/index.json: not a valid bla-data index (tokenizer.end_of_document 99999 is outside the vocabulary "
                   "[0, 257)); prepare the folder again with bla-data prepare");
}

TEST_F(TextTaskTest, IdsOutsideTheIndexVocabularyNameTheShardAndOffset) {
  // An index whose vocab_size is too small for its shards (the byte ids of
  // 'y', 'z' and the end-of-document id 256 are >= 120).
  edit_index(dir_, [](nlohmann::json& j) {
    j["vocab_size"] = 120;
    j["tokenizer"]["end_of_document"] = 10;
  });
  const auto tokens = split_tokens(dir_, index_, {0, index_.train.shards[0].tokens, {index_.train.shards[0]}});
  const auto bad = std::find_if(tokens.begin(), tokens.end(), [](int64_t id) { return id >= 120; }) - tokens.begin();
  ASSERT_LT(bad, static_cast<int64_t>(tokens.size()));
  EXPECT_EQ(error_message([&] { bla::tasks::TextTask({dir_, 16}); }),
            dir_ + "/train-00000.bin: token " + std::to_string(bad) + " (byte offset " + std::to_string(2 * bad) +
                ") is id " + std::to_string(tokens[static_cast<size_t>(bad)]) + ", outside the vocabulary [0, 120) of " +
                dir_ + "/index.json: its vocab_size is wrong or the shards were written with another tokenizer; "
                "prepare the folder again: bla-data prepare --out " + dir_);
}

TEST_F(TextTaskTest, AnIndexVocabularyLargerThanTheModelsIsAConfigError) {
  const std::string yaml = "run: {device: cpu, threads: 1}\nmodel: {d_model: 16, layers: 1, heads: 2, mixer: attention, "
                           "vocab_size: 200}\ndata: {task: text, path: " + dir_ + ", seq_len: 16}\n"
                           "train: {batch_size: 4, steps: 2, eval_examples: 4}\n";
  bla::train::RunOptions options;
  options.run_dir = tmp_ / "run";
  options.quiet = true;
  try {
    bla::train::train(bla::config::parse_config(yaml, "text.yaml"), options);
    FAIL() << "a model of 200 ids trained on a folder of 257";
  } catch (const bla::config::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "model.vocab_size (200) is smaller than the task's vocabulary (257); remove it or raise it");
  }
  // A checkpoint of the folder, evaluated after its index.json grew: bla-eval and friends refuse it.
  options.run_dir = tmp_ / "run2";
  bla::train::train(bla::config::parse_config(yaml, "text.yaml", {"model.vocab_size=0"}), options);
  edit_index(dir_, [](nlohmann::json& j) { j["vocab_size"] = 300; });
  const std::string checkpoint = tmp_ / "run2/checkpoints/step-00000002.ckpt";
  try {
    bla::train::restore_checkpoint(checkpoint);
    FAIL() << "a model of 257 ids restored for a folder of 300";
  } catch (const bla::config::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "the vocab_size of " + dir_ + "/index.json is 300, larger than the vocabulary of the "
                                     "model in " + checkpoint + " (257): its ids would fall outside the model's embedding; "
                                     "use the data the checkpoint was trained on");
  }
}

// Runs `read` in a forked child, so that a SIGBUS cannot take the test
// binary with it; returns what it threw, or how it ended.
std::string error_in_child(const std::function<void()>& read) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return "(no pipe)";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fds[0]);
    const std::string message = error_message(read);
    const ssize_t written = ::write(pipe_fds[1], message.data(), message.size());
    ::_exit(written == static_cast<ssize_t>(message.size()) ? 0 : 1);
  }
  ::close(pipe_fds[1]);
  std::string message;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) message.append(buffer, static_cast<size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return "(killed by signal " + std::to_string(WTERMSIG(status)) + ")";
  return message;
}

TEST_F(TextTaskTest, AShardChangedWhileARunReadsItIsAnErrorNotSigbus) {
  const std::string shard = dir_ + "/train-00000.bin";
  const std::string bytes = util::read_file(shard);
  const std::string changed = shard + " changed while reading; prepare the folder again: bla-data prepare --out " + dir_;
  auto read_all = [](const bla::tasks::TextTask& task) {
    for (int64_t i = 0; i < task.num_examples(bla::tasks::Split::kTrain); ++i) task.window(bla::tasks::Split::kTrain, i);
  };
  {  // truncated in place (what faulted the mapping)
    bla::tasks::TextTask task({dir_, 16});
    ASSERT_EQ(::truncate(shard.c_str(), static_cast<off_t>(bytes.size() / 2)), 0);
    EXPECT_EQ(error_in_child([&] { read_all(task); }),
              changed + " (it has " + std::to_string(bytes.size() / 2) + " bytes, " + std::to_string(bytes.size()) +
                  " when it was opened)");
    util::write_file_atomically(shard, bytes);
  }
  {  // replaced by another file (same bytes, even)
    bla::tasks::TextTask task({dir_, 16});
    util::write_file_atomically(shard, bytes);
    EXPECT_EQ(error_in_child([&] { read_all(task); }), changed + " (another file was put in its place)");
  }
  {  // written in place, same size (dated a second later: file times may be coarser than the test)
    bla::tasks::TextTask task({dir_, 16});
    std::string other = bytes;
    std::reverse(other.begin(), other.end());
    const int fd = ::open(shard.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, other.data(), other.size(), 0), static_cast<ssize_t>(other.size()));
    struct stat info {};
    ::fstat(fd, &info);
    timespec times[2] = {info.st_atim, info.st_mtim};
    times[1].tv_sec += 1;
    ::futimens(fd, times);
    ::close(fd);
    EXPECT_EQ(error_in_child([&] { read_all(task); }), changed + " (it was written since it was opened)");
  }
}

TEST_F(TextTaskTest, ABatchReadWithItsChecksIsCheap) {
  // Every window read checks the file (fstat, stat) and range-checks its ids.
  bla::tasks::TextTask task({dir_, 16});
  std::vector<int64_t> indices(64);
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int64_t>(i) % task.num_examples(bla::tasks::Split::kTrain);
  const auto started = std::chrono::steady_clock::now();
  for (int r = 0; r < 100; ++r) task.batch(bla::tasks::Split::kTrain, indices);
  const double per_batch_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started).count() / 100;
  std::printf("text batch of 64 windows: %.0f us\n", per_batch_us);
  EXPECT_LT(per_batch_us, 20000);
}

// ---- Training ----

TEST(TextTraining, TinyRunLowersTheValidationLoss) {
  TempDir tmp;
  auto options = options_for(write_corpus(tmp, 4, 60), tmp / "data");
  options.val_fraction = 0.1;
  prepare_shards(options);
  const std::string yaml =
      "run: {name: text, seed: 1, threads: 1, device: cpu}\n"
      "model: {d_model: 32, layers: 1, heads: 2, mixer: attention}\n"
      "data: {task: text, path: " + (tmp / "data") + ", seq_len: 32}\n"
      "train: {batch_size: 16, steps: 60, lr: 1.0e-2, warmup_steps: 5, log_every: 20, eval_examples: 64}\n";
  const auto config = bla::config::parse_config(yaml, "text.yaml");
  bla::tasks::TextTask task({tmp / "data", 32});
  torch::manual_seed(1);
  bla::model::LanguageModel untrained(config.model, task.vocab_size(), task.seq_len());
  const auto before = bla::train::evaluate(*untrained, task, bla::tasks::Split::kTest, torch::kCPU, {64, 16, false});
  EXPECT_NEAR(before.at("loss"), std::log(257.0), 0.1) << "an untrained model is near uniform";

  bla::train::RunOptions run;
  run.run_dir = tmp / "run";
  run.quiet = true;
  auto summary = bla::train::train(config, run);
  EXPECT_EQ(summary["task"], "text");
  const double loss = summary["test"]["loss"], perplexity = summary["test"]["perplexity"];
  EXPECT_NEAR(perplexity, std::exp(loss), 1e-9 * perplexity);
  EXPECT_NEAR(summary["test"]["bits_per_token"].get<double>(), loss / std::log(2.0), 1e-12);
  EXPECT_LT(loss, before.at("loss") - 2.0) << "validation loss falls";
}

// A text checkpoint records its tokenizer and sequence length: with the data
// folder gone, bla-generate's restore still builds the model and the
// tokenizer, and decodes what it decoded with the folder there.
TEST(TextTraining, ACheckpointGeneratesWithoutItsDataFolder) {
  TempDir tmp;
  auto options = options_for(write_corpus(tmp, 2, 30), tmp / "data");
  prepare_shards(options);
  const std::string yaml =
      "run: {name: text, seed: 1, threads: 1, device: cpu}\n"
      "model: {d_model: 32, layers: 1, heads: 2, mixer: attention}\n"
      "data: {task: text, path: " + (tmp / "data") + ", seq_len: 32}\n"
      "train: {batch_size: 8, steps: 4, lr: 1.0e-2, log_every: 2, eval_examples: 16}\n";
  bla::train::RunOptions run;
  run.run_dir = tmp / "run";
  run.quiet = true;
  bla::train::train(bla::config::parse_config(yaml, "text.yaml"), run);
  const std::string checkpoint = tmp / "run/checkpoints/step-00000004.ckpt";
  const auto meta = bla::train::read_checkpoint_meta(checkpoint);
  EXPECT_EQ(meta.at("seq_len"), 32);
  EXPECT_EQ(meta.at("tokenizer"), (nlohmann::json{{"kind", "byte"}, {"vocab_size", 257}, {"end_of_document", 256}}));

  auto greedy = [&](bla::train::RestoredRun& restored) {
    std::vector<int64_t> prompt{restored.tokenizer->end_of_document()};
    for (int64_t id : restored.tokenizer->encode("the cat")) prompt.push_back(id);
    return bla::train::decode(*restored.model, prompt, 12, {0.0, 0, 0}, torch::kCPU).tokens;
  };
  auto with_data = bla::train::restore_checkpoint(checkpoint);
  ASSERT_NE(with_data.task, nullptr);
  const auto expected = greedy(with_data);

  util::remove_tree(tmp / "data");
  EXPECT_THROW(bla::train::restore_checkpoint(checkpoint), bla::config::ConfigError) << "eval needs the data";
  bla::train::RestoreOptions restore;
  restore.data_optional = true;
  auto without = bla::train::restore_checkpoint(checkpoint, restore);
  EXPECT_EQ(without.task, nullptr);
  EXPECT_NE(without.data_missing.find("data.path"), std::string::npos) << without.data_missing;
  ASSERT_NE(without.tokenizer, nullptr);
  EXPECT_EQ(without.tokenizer->kind(), "byte");
  EXPECT_EQ(greedy(without), expected);
}

TEST(TextTraining, ResumedRunEndsWithTheSameParameters) {
  // The data position alone resumes the text stream: 3 steps, then 3 more
  // from the checkpoint, equal 6 straight steps (constant schedule).
  TempDir tmp;
  prepare_shards(options_for(write_corpus(tmp, 2, 30), tmp / "data"));
  auto config = [&](int steps) {
    return bla::config::parse_config(
        "run: {seed: 2, threads: 1, device: cpu}\n"
        "model: {d_model: 16, layers: 1, heads: 2, mixer: attention}\n"
        "data: {task: text, path: " + (tmp / "data") + ", seq_len: 16}\n"
        "train: {batch_size: 8, steps: " + std::to_string(steps) + ", lr: 1.0e-2, schedule: constant, eval_examples: 8,\n"
        "        checkpoint_every: 3}\n",
        "resume.yaml");
  };
  auto run = [&](int steps, const std::string& dir, const std::string& resume) {
    bla::train::RunOptions options;
    options.run_dir = dir;
    options.resume = resume;
    options.quiet = true;
    bla::train::train(config(steps), options);
  };
  run(6, tmp / "straight", "");
  run(3, tmp / "resumed", "");
  run(6, tmp / "resumed", "auto");
  auto parameters = [&](const std::string& dir) {
    bla::model::LanguageModel model(config(6).model, 257, 16);
    bla::train::load_checkpoint(dir + "/checkpoints/step-00000006.ckpt", *model, nullptr);
    return model->parameters();
  };
  const auto a = parameters(tmp / "straight"), b = parameters(tmp / "resumed");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

// ---- SentencePiece (only in builds that have it) ----

TEST(TextSentencePiece, MissingSupportSaysHowToGetIt) {
  EXPECT_EQ(sentencepiece_missing_message("--tokenizer", "m.model"),
            "--tokenizer m.model: this build of bla-train has no SentencePiece support; install it (apt-get install "
            "libsentencepiece-dev) and rebuild (scripts/build.sh), or use the byte-level tokenizer (--tokenizer byte)");
  if (sentencepiece_available()) GTEST_SKIP() << "this build has SentencePiece";
  EXPECT_EQ(error_message([] { make_tokenizer("m.model", "--tokenizer"); }),
            sentencepiece_missing_message("--tokenizer", "m.model"));
}

TEST(TextSentencePiece, TrainedModelRoundTripsAndPreparesShards) {
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

TEST(TextCommand, BlaDataPrepareWritesTheFolderAndRecordsItsCommand) {
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
