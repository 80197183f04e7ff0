// Checkpoints that cannot be trusted: a payload damaged behind a valid seal
// (every reader: CheckpointError, one line naming the file, exit 3 from the
// programs) and a checkpoint of another model config (named difference).
#include "bla/config/config.h"
#include "bla/model/lm.h"
#include "bla/train/checkpoint.h"
#include "bla/train/restore.h"
#include "bla/train/trainer.h"
#include "bla/util/checksum.h"
#include "bla/util/files.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <sstream>

using bla::testing::TempDir;
using bla::testing::tiny_mqar_config;

namespace {

const std::string kBla = "  mixers: {bla: {window: 8, slots: 4, chunk: 4}}\n";

bla::config::Config tiny_bla(const std::vector<std::string>& overrides = {}) {
  return bla::config::parse_config(tiny_mqar_config("bla", kBla), "tiny.yaml", overrides);
}

// Trains 3 steps of `config` into dir/run; returns its checkpoint.
std::string make_checkpoint(const bla::config::Config& config, const std::string& dir) {
  bla::train::RunOptions options;
  options.run_dir = dir + "/run";
  options.quiet = true;
  bla::train::train(config, options);
  return dir + "/run/checkpoints/step-00000003.ckpt";
}

// The sealed file's payload, and a payload sealed again as save_checkpoint
// would (magic, size, FNV-1a 64): a damage the checksum cannot see.
std::string payload_of(const std::string& sealed) { return sealed.substr(0, sealed.size() - 24); }
std::string seal(const std::string& payload) {
  uint64_t size = payload.size(), hash = bla::util::fnv1a64(payload);
  std::string bytes = payload + "BLACKPT1";
  bytes.append(reinterpret_cast<const char*>(&size), sizeof(size));
  bytes.append(reinterpret_cast<const char*>(&hash), sizeof(hash));
  return bytes;
}

// An archive laid out as encode_checkpoint lays it out, from parts.
std::string sealed_archive(const std::string& meta, const torch::nn::Module& model) {
  torch::serialize::OutputArchive archive;
  archive.write("meta", c10::IValue(meta));
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  archive.write("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
  std::ostringstream out;
  archive.save_to(out);
  return seal(out.str());
}

template <class F>
std::string checkpoint_error_of(F&& f) {
  try {
    f();
  } catch (const bla::train::CheckpointError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a CheckpointError: ") + e.what();
  }
  return "(no error)";
}

// Damaged payloads behind valid seals, each refused by a different layer.
struct Damaged {
  std::string name, path;
};

class DamagedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = tiny_bla({"train.steps=3"});
    good_ = make_checkpoint(config_, tmp_.str());
    const std::string bytes = bla::util::read_file(good_);
    const std::string payload = payload_of(bytes);
    auto write = [&](const std::string& name, const std::string& sealed) {
      damaged_.push_back({name, tmp_ / (name + ".ckpt")});
      bla::util::write_file_atomically(damaged_.back().path, sealed);
    };
    // The zip's end-of-central-directory record cut off: the archive does not load.
    write("no_directory", seal(payload.substr(0, payload.size() - 22)));
    // The meta is not JSON.
    bla::model::LanguageModel model(config_.model, 64, 32);
    write("meta_not_json", sealed_archive("{\"format\": \"bla-train checkpoint 1\", \"parameters\"", *model));
    // The meta of the real checkpoint, the tensors of a smaller model: every
    // tensor loads, none has the shape the meta lists.
    auto meta = bla::train::read_checkpoint_meta(good_);
    bla::model::LanguageModel small(tiny_bla({"model.d_model=16", "model.heads=2"}).model, 64, 32);
    write("wrong_shapes", sealed_archive(meta.dump(), *small));
  }
  TempDir tmp_;
  bla::config::Config config_;
  std::string good_;
  std::vector<Damaged> damaged_;
};

TEST_F(DamagedCheckpoint, EveryReaderRefusesItInOneLineNamingTheFile) {
  EXPECT_NO_THROW(bla::train::verify_checkpoint(good_));
  for (const auto& d : damaged_) {
    SCOPED_TRACE(d.name);
    for (const auto& [reader, error] : std::vector<std::pair<std::string, std::string>>{
             {"verify", checkpoint_error_of([&] { bla::train::verify_checkpoint(d.path); })},
             {"load", checkpoint_error_of([&] {
                bla::model::LanguageModel model(config_.model, 64, 32);
                torch::optim::AdamW optimizer(model->parameters());
                bla::train::load_checkpoint(d.path, *model, &optimizer);
              })},
             {"restore", checkpoint_error_of([&] { bla::train::restore_checkpoint(d.path); })}}) {
      SCOPED_TRACE(reader);
      EXPECT_EQ(error.rfind("checkpoint " + d.path + " is damaged (", 0), 0u) << error;
      EXPECT_NE(error.find("); delete it and resume from an earlier checkpoint"), std::string::npos) << error;
      EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    }
  }
  // read_checkpoint_meta (what --resume auto checked) cannot see the last one; verify_checkpoint can.
  EXPECT_NO_THROW(bla::train::read_checkpoint_meta(damaged_[2].path));
  EXPECT_NE(checkpoint_error_of([&] { bla::train::verify_checkpoint(damaged_[2].path); })
                .find("(tensor 'blocks.0.mixer.k_proj.weight' has shape [16,16], its meta says [32,32])"),
            std::string::npos);
}

// Where a flip behind a valid seal is flipped: the payload's tensor records
// (their local headers and data) and its zip directory, the parts that
// LibTorch's zip reader and load_checkpoint's checks guard. The records
// between them (data.pkl, the TorchScript code, constants.pkl) go to
// LibTorch's unpickler and code parser, which trust their input: a flip
// there can allocate tens of GiB or crash the process, so a checkpoint is
// trusted input and the seal is what catches damage (docs/design.md).
std::vector<size_t> flip_positions(const std::string& payload) {
  const size_t pickle_name = payload.find("archive/data.pkl");
  const size_t end_record = payload.size() - 22;  // the zip's end-of-central-directory record
  uint32_t directory = 0;
  std::memcpy(&directory, payload.data() + end_record + 16, sizeof(directory));
  const size_t records_end = pickle_name - 30;  // the local header before the name
  // Not laid out as this expects: no positions, and the test fails.
  if (pickle_name == std::string::npos || pickle_name < 30 || payload.compare(end_record, 4, "PK\x05\x06") != 0 ||
      records_end >= directory || directory >= payload.size()) {
    ADD_FAILURE() << "the payload is not laid out as LibTorch's zip archive was when this test was written";
    return {};
  }
  std::vector<size_t> at;
  for (size_t i = 0; i < 64; ++i) at.push_back(i * records_end / 64);
  for (size_t i = 0; i < 48; ++i) at.push_back(directory + i * (payload.size() - directory) / 48);
  return at;
}

TEST_F(DamagedCheckpoint, ByteFlipsBehindAValidSealAreCheckpointErrorsOrHarmless) {
  // Each flip either leaves a loadable file (tensor data: no checksum can
  // tell) or is refused by a CheckpointError of one line; nothing else escapes.
  const std::string payload = payload_of(bla::util::read_file(good_));
  const std::string path = tmp_ / "flipped.ckpt";
  int refused = 0, harmless = 0;
  for (size_t at : flip_positions(payload)) {
    std::string flipped = payload;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x5a);
    bla::util::write_file_atomically(path, seal(flipped));
    const std::string verify = checkpoint_error_of([&] { bla::train::verify_checkpoint(path); });
    const std::string load = checkpoint_error_of([&] {
      bla::model::LanguageModel model(config_.model, 64, 32);
      bla::train::load_checkpoint(path, *model, nullptr);
    });
    for (const auto& error : {verify, load}) {
      if (error == "(no error)") continue;
      EXPECT_EQ(error.rfind("checkpoint " + path + " ", 0), 0u) << "byte " << at << ": " << error;
      EXPECT_EQ(error.find('\n'), std::string::npos) << "byte " << at << ": " << error;
    }
    if (load != "(no error)") EXPECT_NE(verify, "(no error)") << "byte " << at << ": load refused it, verify did not";
    refused += verify != "(no error)";
    harmless += verify == "(no error)";
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(harmless, 0);
}

TEST(CheckpointFile, ThatIsNotARegularFileIsRefusedBeforeReading) {
  EXPECT_EQ(checkpoint_error_of([] { bla::train::read_checkpoint_meta("/dev/zero"); }),
            "checkpoint /dev/zero: is not a regular file (a device, pipe or socket), not a checkpoint");
  TempDir tmp;
  EXPECT_EQ(checkpoint_error_of([&] { bla::train::verify_checkpoint(tmp.str()); }),
            "checkpoint " + tmp.str() + ": is a folder, not a checkpoint");
}

TEST_F(DamagedCheckpoint, ProgramsExitWith3AndOneLine) {
  const std::string bin = std::string(BLA_BINARY_DIR) + "/src/";
  for (const char* program : {"bla-eval", "bla-export", "bla-generate", "bla-train"}) {
    ASSERT_TRUE(bla::util::path_exists(bin + program)) << bin + program << " is not built";
  }
  const std::string cfg = tmp_ / "cfg.yaml";
  bla::util::write_file_atomically(cfg, tiny_mqar_config("bla", kBla));
  for (const auto& d : damaged_) {
    for (const std::string& command :
         {bin + "bla-eval " + d.path + " --out " + (tmp_ / "eval.json"),
          bin + "bla-export " + d.path + " --out " + (tmp_ / "export"),
          bin + "bla-generate " + d.path + " --prompt '1 2 3' --max-new-tokens 2",
          bin + "bla-train " + cfg + " --out " + (tmp_ / "resumed") + " --resume " + d.path}) {
      auto outcome = bla::testing::run_command(command, 120);
      SCOPED_TRACE(command + "\n" + outcome.output);
      EXPECT_EQ(outcome.status, 3);
      EXPECT_NE(outcome.output.find(d.path + " is damaged ("), std::string::npos);
      EXPECT_EQ(outcome.output.find("Exception raised from"), std::string::npos);
      EXPECT_EQ(outcome.output.find("frame #"), std::string::npos);
    }
  }
}

// ---- Another model config ----

TEST(ModelConfigDifference, NamesTheFirstKeyThatDiffers) {
  using bla::train::model_config_difference;
  const std::string bla = "d_model: 32\nmlp_ratio: 4\nmixer:\n  - type: bla\n    window: 8\n    slots: 4\n    rope: false\n";
  EXPECT_EQ(model_config_difference(bla, bla), "");
  EXPECT_EQ(model_config_difference(bla, "d_model: 32.0\nmlp_ratio: 4.0\nmixer: [{type: bla, slots: 4, window: 8, rope: False}]"),
            "")
      << "numbers by value, booleans by meaning, keys in any order";
  EXPECT_EQ(model_config_difference(bla, "d_model: 32\nmlp_ratio: 4\nmixer: [{type: attention, rope: true}]"),
            "model.mixer: checkpoint has bla, config has attention");
  EXPECT_EQ(model_config_difference(bla, "d_model: 32\nmlp_ratio: 4\nmixer: [{type: bla, window: 8, slots: 16, rope: false}]"),
            "model.mixer.slots: checkpoint has 4, config has 16");
  EXPECT_EQ(model_config_difference(bla, "d_model: 32\nmlp_ratio: 4\nmixer: [{type: bla, window: 8, slots: 4}]"),
            "model.mixer.rope: checkpoint has false, config has no such key");
  // model.mixer per layer: a pattern repeated over the layers is the same model as the layers listed.
  EXPECT_EQ(model_config_difference("layers: 4\nmixer: [{type: swa, window: 4}, {type: bla, window: 8}]",
                                    "layers: 4\nmixer: [{type: swa, window: 4}, {type: bla, window: 9}]"),
            "model.mixer[1].window: checkpoint has 8, config has 9");
  EXPECT_EQ(model_config_difference("layers: 4\nmixer: [{type: swa}, {type: bla}]",
                                    "layers: 4\nmixer: [{type: swa}, {type: bla}, {type: swa}, {type: bla}]"),
            "");
  EXPECT_EQ(model_config_difference("layers: 2\nmixer: [{type: bla}]", "layers: 2\nmixer: [{type: bla}, {type: swa}]"),
            "model.mixer[1]: checkpoint has bla, config has swa");
  EXPECT_EQ(model_config_difference("layers: 2\nmixer: [{type: bla}]", "layers: 4\nmixer: [{type: bla}]"),
            "model.layers: checkpoint has 2, config has 4");
  EXPECT_EQ(model_config_difference("mixer: [{type: swa}, {type: bla}]", "mixer: [{type: swa}]"),
            "model.mixer: checkpoint has [{type: swa}, {type: bla}], config has [{type: swa}]");
  EXPECT_EQ(model_config_difference("d_model: 32", "d_model: 32\nheads: 4"),
            "model.heads: checkpoint has no such key, config has 4");
}

TEST(ModelConfigDifference, AResolvedConfigReadAgainHasNoDifference) {
  // What restore_checkpoint relies on: the config stored in a checkpoint,
  // parsed again, gives the model section the run saved (every mixer).
  const std::string dir = std::string(BLA_SOURCE_DIR) + "/configs";
  int compared = 0;
  for (const auto& name : bla::util::list_directory(dir)) {
    if (name.rfind("mqar_", 0) != 0 && name.rfind("regbench_", 0) != 0) continue;
    SCOPED_TRACE(name);
    auto config = bla::config::load_config(dir + "/" + name, {"run.device=cpu"});
    bla::model::LanguageModel model(config.model, 256, 64);
    auto again = bla::config::parse_config(config.resolved_yaml(), "resolved.yaml");
    bla::model::LanguageModel model_again(again.model, 256, 64);
    EXPECT_EQ(bla::train::model_config_difference(bla::train::model_config_yaml(config), bla::train::model_config_yaml(again)),
              "");
    ++compared;
  }
  EXPECT_GE(compared, 8);
}

TEST(ModelConfigDifference, ABlaCheckpointIsRefusedUnderAnotherMixerConfig) {
  TempDir tmp;
  const std::string checkpoint = make_checkpoint(tiny_bla({"train.steps=3"}), tmp.str());
  auto error_loading = [&](const std::vector<std::string>& overrides) {
    auto config = tiny_bla(overrides);
    bla::model::LanguageModel model(config.model, 64, 32);  // reads every mixer key into config.resolved
    return checkpoint_error_of(
        [&] { bla::train::load_checkpoint(checkpoint, *model, nullptr, bla::train::model_config_yaml(config)); });
  };
  const std::string refused = "checkpoint " + checkpoint + " was made with another model config (";
  const std::string fix = "); load it with the model section it was made with, or start a new run";
  EXPECT_EQ(error_loading({}), "(no error)") << "the config it was made with";
  EXPECT_EQ(error_loading({"model.mixer=attention"}), refused + "model.mixer: checkpoint has bla, config has attention" + fix);
  EXPECT_EQ(error_loading({"model.mixer=swa", "model.mixers.swa.window=8"}),
            refused + "model.mixer: checkpoint has bla, config has swa" + fix);
  EXPECT_EQ(error_loading({"model.mixers.bla.slots=8"}), refused + "model.mixer.slots: checkpoint has 4, config has 8" + fix);
  EXPECT_EQ(error_loading({"model.mixers.bla.window=32", "model.mixers.bla.rope=true"}),
            refused + "model.mixer.window: checkpoint has 8, config has 32" + fix);
  EXPECT_EQ(error_loading({"model.mixers.bla.rope=true"}), refused + "model.mixer.rope: checkpoint has false, config has true" + fix);
  // Without the current model section only the shapes are compared (as before).
  auto config = tiny_bla({"model.mixer=attention"});
  bla::model::LanguageModel model(config.model, 64, 32);
  EXPECT_NO_THROW(bla::train::load_checkpoint(checkpoint, *model, nullptr));

  // bla-eval, bla-export and bla-generate restore with --set overrides.
  EXPECT_NO_THROW(bla::train::restore_checkpoint(checkpoint, {{"data.test_examples=5"}}));
  EXPECT_EQ(checkpoint_error_of([&] { bla::train::restore_checkpoint(checkpoint, {{"model.mixer=attention"}}); }),
            refused + "model.mixer: checkpoint has bla, config has attention" + fix);
  // (The stored config lists each mixer's keys under model.mixer, where they win over model.mixers.bla.)
  EXPECT_EQ(checkpoint_error_of([&] {
              bla::train::restore_checkpoint(checkpoint, {{"model.mixer=[{type: bla, window: 8, slots: 2, chunk: 4}]"}});
            }),
            refused + "model.mixer.slots: checkpoint has 4, config has 2" + fix);
}

// ---- Vocabulary ----

TEST(CheckpointVocabulary, ATaskVocabularyLargerThanTheModelsIsAConfigError) {
  TempDir tmp;
  const std::string checkpoint = make_checkpoint(tiny_bla({"train.steps=3"}), tmp.str());
  try {
    bla::train::restore_checkpoint(checkpoint, {{"data.vocab_size=300"}});
    FAIL() << "accepted a task vocabulary of 300 for a model of 64";
  } catch (const bla::config::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "the task's vocabulary (data.vocab_size) is 300, larger than the vocabulary of the "
                                     "model in " + checkpoint + " (64): its ids would fall outside the model's "
                                     "embedding; use the data the checkpoint was trained on");
  }
  EXPECT_NO_THROW(bla::train::restore_checkpoint(checkpoint, {{"data.vocab_size=60"}})) << "a smaller one fits";
}

}  // namespace
