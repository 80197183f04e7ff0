// Inputs a config must refuse with a ConfigError that names the file and
// line (or the --set): what yaml-cpp accepts silently (duplicate keys, a
// second document, empty values, complex keys), device strings, absurd
// sizes, and run names that cannot name a folder.
#include "bla/config/config.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>

using bla::config::ConfigError;
using bla::config::parse_config;

using bla::testing::config_error_of;

namespace {

const std::string kValid = bla::testing::tiny_mqar_config();

TEST(ConfigInput, DuplicateKeyInOneSectionIsAnErrorWithBothLines) {
  std::string yaml = kValid;
  yaml.replace(yaml.find("  layers: 2\n"), 12, "  layers: 2\n  layers: 3\n");
  EXPECT_EQ(config_error_of(yaml), "cfg.yaml, line 5: model.layers: duplicate key 'model.layers' (first given on line 4); "
                            "give each key once");
}

TEST(ConfigInput, DuplicateKeyInsideAFlowMappingIsAnError) {
  std::string yaml = kValid;
  yaml.replace(yaml.find("lr: 3.0e-3"), 10, "lr: 3.0e-3, lr: 9.0");
  EXPECT_NE(config_error_of(yaml).find("cfg.yaml, line 8: train.lr: duplicate key 'train.lr'"), std::string::npos)
      << config_error_of(yaml);
}

TEST(ConfigInput, SecondSectionOfTheSameNameIsAnErrorAcrossFlowAndBlockStyle) {
  // train is given in flow style by the tiny config; a block-style train section follows.
  const std::string message = config_error_of(kValid + "train:\n  lr: 9.0\n");
  EXPECT_EQ(message, "cfg.yaml, line 10: train: duplicate key 'train' (first given on line 8); give each key once");
}

TEST(ConfigInput, DuplicateKeyInAnOverrideValueIsAnError) {
  EXPECT_EQ(config_error_of(kValid, {"model.mixers.swa={window: 4, window: 8}"}),
            "--set model.mixers.swa={window: 4, window: 8}: model.mixers.swa.window: duplicate key "
            "'model.mixers.swa.window'; give each key once");
}

TEST(ConfigInput, SecondYamlDocumentIsAnError) {
  EXPECT_EQ(config_error_of(kValid + "---\ntrain: {lr: 9.0}\n"),
            "cfg.yaml, line 11: a second YAML document ('---'); a config is one document: merge them or remove the '---'");
}

TEST(ConfigInput, EmptyValueIsAnErrorNotTheDefault) {
  std::string yaml = kValid;
  yaml.replace(yaml.find("heads: 2"), 8, "heads:");
  EXPECT_EQ(config_error_of(yaml), "cfg.yaml, line 5: model.heads: has no value; give one, or remove the key to use the default");
  EXPECT_NE(config_error_of(kValid, {"model.heads="}).find("--set model.heads=: no value"), std::string::npos);
  EXPECT_NE(config_error_of(kValid, {"model.heads=~"}).find("--set model.heads=~: no value"), std::string::npos);
}

TEST(ConfigInput, ComplexMappingKeyIsAnError) {
  EXPECT_EQ(config_error_of(kValid + "? [a, b]\n: 1\n"),
            "cfg.yaml, line 10: a key must be a plain name, not a list or mapping ('? [a, b]' keys are not supported)");
  std::string yaml = kValid;
  yaml.replace(yaml.find("  d_model: 32\n"), 14, "  d_model: 32\n  ? {x: 1}\n  : 2\n");
  EXPECT_NE(config_error_of(yaml).find("cfg.yaml, line 4: model: a key must be a plain name"), std::string::npos)
      << config_error_of(yaml);
}

TEST(ConfigInput, MixerTypeThatIsNotANameIsAConfigErrorNamingTheKey) {
  EXPECT_EQ(config_error_of(kValid, {"model.mixer=[{type: [bla]}]"}),
            "--set model.mixer=[{type: [bla]}]: model.mixer: entry 0: 'type' must be a mixer type name, not a list or "
            "mapping");
  EXPECT_NE(config_error_of(kValid, {"model.mixer=[{type: {a: 1}}, attention]"}).find("model.mixer: entry 0"), std::string::npos);
  EXPECT_NE(config_error_of(kValid, {"model.mixer=[[bla], attention]"}).find("model.mixer: each entry must be"),
            std::string::npos);
}

TEST(ConfigInput, OverridePathMustBeNamesJoinedByDots) {
  EXPECT_NE(config_error_of(kValid, {"train..lr=1"}).find("'train..lr' is not a key path"), std::string::npos);
  EXPECT_NE(config_error_of(kValid, {".=1"}).find("is not a key path"), std::string::npos);
}

TEST(ConfigInput, DeviceAcceptsAutoCpuCudaAndPresentIndices) {
  using bla::config::device_problem;
  for (const char* device : {"auto", "cpu", "cuda", "cuda:0", "cuda:1"}) EXPECT_EQ(device_problem(device, 2), "") << device;
  EXPECT_EQ(device_problem("cuda:2", 2),
            "'cuda:2' names CUDA device 2, but this machine has 2 CUDA devices; accepted: auto, cpu, cuda, cuda:N with "
            "0 <= N < the number of CUDA devices (2 here)");
  for (const char* device : {"cudafoo", "cuda:-1", "cuda:", "cuda:+1", "cuda:1x", "CPU", "", "cuda:99999999999"}) {
    EXPECT_NE(device_problem(device, 2).find("is not a device; accepted: auto, cpu, cuda, cuda:N"), std::string::npos)
        << device;
  }
}

TEST(ConfigInput, DeviceIsCheckedWhenTheConfigIsRead) {
  EXPECT_EQ(config_error_of(kValid, {"run.device=cudafoo"}),
            "--set run.device=cudafoo: run.device: 'cudafoo' is not a device; accepted: auto, cpu, cuda, cuda:N with "
            "0 <= N < the number of CUDA devices (" + std::to_string(torch::cuda::device_count()) + " here)");
  EXPECT_NE(config_error_of(kValid, {"run.device=cuda:-1"}).find("run.device: 'cuda:-1' is not a device"), std::string::npos);
  const std::string beyond = "cuda:" + std::to_string(torch::cuda::device_count());
  EXPECT_NE(config_error_of(kValid, {"run.device=" + beyond}).find("but this machine has"), std::string::npos);
}

TEST(ConfigInput, AbsurdSizesAreConfigErrors) {
  for (const char* set : {"model.d_model=65536", "train.batch_size=16777216", "model.vocab_size=16777216",
                          "model.layers=100000", "train.eval_batch_size=16777216", "run.threads=1024"}) {
    EXPECT_NE(config_error_of(kValid, {set}).find("is out of range"), std::string::npos) << set << ": " << config_error_of(kValid, {set});
  }
}

TEST(ConfigInput, RunNameMustNameOneFolder) {
  EXPECT_NE(config_error_of(kValid, {"run.name=a/b"}).find("run.name: 'a/b' cannot name a folder"), std::string::npos);
  EXPECT_NE(config_error_of(kValid, {"run.name=.."}).find("cannot name a folder"), std::string::npos);
  EXPECT_NE(config_error_of(kValid, {"run.name=''"}).find("cannot name a folder"), std::string::npos);
  EXPECT_NE(config_error_of(kValid, {"run.out_dir=''"}).find("run.out_dir: must be a folder path"), std::string::npos);
}

TEST(ConfigInput, TextThatIsNotUtf8IsAnError) {
  std::string yaml = kValid;
  yaml.replace(yaml.find("name: tiny"), 10, "name: \"tiny\xff\xfe\"");
  EXPECT_EQ(config_error_of(yaml), "cfg.yaml, line 1: run.name: the value is not valid UTF-8 text");
  EXPECT_NE(config_error_of(kValid, {std::string("run.out_dir=runs\xc3")}).find("the value is not valid UTF-8 text"),
            std::string::npos);
  // Valid multi-byte UTF-8 is a fine name.
  EXPECT_EQ(parse_config(kValid, "cfg.yaml", {"run.name=l\xc3\xa4uft-\xe2\x9c\x93"}).run.name, "l\xc3\xa4uft-\xe2\x9c\x93");
}

TEST(ConfigInput, DeepNestingIsAnError) {
  std::string deep = "x";
  for (int i = 0; i < 80; ++i) deep = "[" + deep + "]";
  EXPECT_NE(config_error_of(kValid, {"model.mixers.bla.windows=" + deep}).find("nested more than 64 levels deep"),
            std::string::npos);
}

TEST(ConfigInput, ConfigFileMustBeARegularFile) {
  const auto message = [](const std::string& path) {
    try {
      bla::config::load_config(path);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(message("/dev/zero"), "/dev/zero: is not a regular file (a device, pipe or socket), not a config file");
  bla::testing::TempDir tmp;
  EXPECT_EQ(message(tmp.str()), tmp.str() + ": is a folder, not a config file");
}

TEST(ConfigInput, ResolvedConfigOfEveryShippedConfigParsesBack) {
  // The resolved config is stored in checkpoints and parsed again on restore: it must pass the new checks.
  auto config = parse_config(kValid, "cfg.yaml", {"model.mixer=[{type: swa, window: 4}, attention]"});
  EXPECT_NO_THROW(parse_config(config.resolved_yaml(), "resolved.yaml"));
}

}  // namespace
