#include "bla/config/config.h"
#include "bla/data/prepare.h"
#include "bla/data/tokenizer.h"
#include "bla/model/lm.h"
#include "bla/tasks/text.h"
#include "bla/train/checkpoint.h"
#include "bla/train/evaluate.h"
#include "bla/train/decode.h"
#include "bla/train/restore.h"
#include "bla/train/trainer.h"
#include "bla/util/checksum.h"
#include "bla/util/files.h"

#include "support/run_helpers.h"
#include "support/shard_reading.h"
#include "support/text_corpus.h"

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
using bla::testing::options_for;
using bla::testing::split_tokens;
using bla::testing::write_corpus;
using namespace bla::data;
namespace util = bla::util;

namespace {

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
  EXPECT_EQ(bla::train::describe_architecture(without)["max_seq_len"], 32) << "bla-export's description too";
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

}  // namespace
