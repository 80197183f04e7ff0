#include "bla/config/config.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <fstream>

using bla::config::ConfigError;
using bla::config::parse_config;

using bla::testing::config_error_of;

namespace {

const std::string kValid = bla::testing::tiny_mqar_config();

TEST(Config, ValidConfigParsesIntoTypedSections) {
  auto config = parse_config(kValid, "cfg.yaml");
  EXPECT_EQ(config.model.d_model, 32);
  EXPECT_EQ(config.model.layers, 2);
  ASSERT_EQ(config.model.mixers.size(), 2u);
  EXPECT_EQ(config.model.mixers[1].type, "attention");
  EXPECT_EQ(config.train.batch_size, 16);
  EXPECT_DOUBLE_EQ(config.train.lr, 3e-3);
  EXPECT_EQ(config.train.schedule, "cosine");  // default
  EXPECT_EQ(config.run.seed, 3u);
}

TEST(Config, UnknownKeyIsNamedWithTheClosestKnownKey) {
  std::string yaml = kValid;
  yaml.replace(yaml.find("d_model: 32"), 11, "d_modle: 32");
  EXPECT_EQ(config_error_of(yaml), "cfg.yaml, line 3: unknown key 'model.d_modle' (did you mean 'model.d_model'?)");
}

TEST(Config, UnknownSectionIsRejected) {
  EXPECT_EQ(config_error_of(kValid + "trian: {steps: 3}\n"), "cfg.yaml, line 10: unknown key 'trian' (did you mean 'train'?)");
}

TEST(Config, WrongTypeNamesKeyFileAndLine) {
  std::string yaml = kValid;
  yaml.replace(yaml.find("layers: 2"), 9, "layers: two");
  EXPECT_EQ(config_error_of(yaml), "cfg.yaml, line 4: model.layers: expected an integer, got 'two'");
}

TEST(Config, OutOfRangeValueIsRejected) {
  EXPECT_EQ(config_error_of(kValid, {"train.batch_size=0"}),
            "--set train.batch_size=0: train.batch_size: value 0 is out of range [1, 65536]");
}

TEST(Config, OverridesReplaceValuesAndNameThemselvesInErrors) {
  auto config = parse_config(kValid, "cfg.yaml", {"train.lr=1e-4", "model.mixer=[swa, attention]", "model.mixers.swa.window=8"});
  EXPECT_DOUBLE_EQ(config.train.lr, 1e-4);
  EXPECT_EQ(config.model.mixers[0].type, "swa");
  EXPECT_EQ(config.model.mixers[1].type, "attention");
  EXPECT_EQ(config_error_of(kValid, {"train.lr"}), "--set train.lr: expected key.path=value, for example --set train.lr=3e-4");
}

TEST(Config, UnknownMixerTypeListsTheKnownOnes) {
  std::string message = config_error_of(kValid, {"model.mixer=atention"});
  EXPECT_NE(message.find("model.mixer: unknown mixer type 'atention' (did you mean 'attention'?)"), std::string::npos)
      << message;
}

TEST(Config, MixerPatternMustDivideLayers) {
  EXPECT_EQ(config_error_of(kValid, {"model.mixer=[attention, attention, attention]"}),
            "--set model.mixer=[attention, attention, attention]: model.mixer: has 3 entries, which does not divide "
            "layers (2); give one entry per layer or a pattern that repeats evenly");
}

TEST(Config, HybridPatternRepeatsOverLayers) {
  auto config = parse_config(kValid, "cfg.yaml", {"model.layers=4", "model.mixer=[swa, attention]", "model.mixers.swa.window=4"});
  ASSERT_EQ(config.model.mixers.size(), 4u);
  EXPECT_EQ(config.model.mixers[2].type, "swa");
  EXPECT_EQ(config.model.mixers[3].type, "attention");
}

TEST(Config, ChoiceSuggestsTheClosestValue) {
  EXPECT_EQ(config_error_of(kValid, {"train.schedule=cosin"}),
            "--set train.schedule=cosin: train.schedule: 'cosin' is not one of: cosine, constant (did you mean 'cosine'?)");
}

TEST(Config, StepsOrEpochsIsRequired) {
  std::string yaml = kValid;
  yaml.replace(yaml.find("steps: 12, "), 11, "");
  EXPECT_EQ(config_error_of(yaml), "cfg.yaml, line 8: train.steps: set train.steps or train.epochs (both are 0)");
}

TEST(Config, InvalidYamlNamesTheLine) {
  EXPECT_EQ(config_error_of("run:\n  name: [x\n"), "cfg.yaml, line 3: not valid YAML: end of sequence flow not found");
}

TEST(Config, MissingFileIsAClearError) {
  try {
    bla::config::load_config("/nonexistent/cfg.yaml");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/cfg.yaml: cannot open the config file (check the path)");
  }
}

TEST(Config, ResolvedConfigHoldsDefaults) {
  auto config = parse_config(kValid, "cfg.yaml");
  std::string resolved = config.resolved_yaml();
  EXPECT_NE(resolved.find("schedule: cosine"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("grad_clip: 1"), std::string::npos) << resolved;
  // The resolved config parses back to the same values.
  auto again = parse_config(resolved, "resolved.yaml");
  EXPECT_EQ(again.train.steps, config.train.steps);
  EXPECT_EQ(again.model.mixers[0].type, "attention");
}

TEST(Config, ClosestKeyIgnoresFarAwayNames) {
  EXPECT_EQ(bla::config::closest_key("lr", {"lr_min", "batch_size"}), "");
  EXPECT_EQ(bla::config::closest_key("bacth_size", {"lr", "batch_size"}), "batch_size");
}

}  // namespace
