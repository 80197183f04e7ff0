// The memory estimate made before anything is allocated: its parameter count
// against a real model's, and a size that cannot fit refused as a config
// error naming the keys to lower.
#include "bla/config/config.h"
#include "bla/model/lm.h"
#include "bla/train/memory_estimate.h"
#include "bla/train/trainer.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>

namespace {

TEST(MemoryEstimate, CountsTheParametersOfAnAttentionModel) {
  auto config = bla::config::parse_config(bla::testing::tiny_mqar_config(), "tiny.yaml");
  bla::model::LanguageModel model(config.model, 64, 32);
  auto e = bla::train::estimate_training_memory(config, 64, 32);
  const double actual = static_cast<double>(model->num_parameters());
  EXPECT_LE(e.parameters, actual) << "a lower bound";
  EXPECT_GT(e.parameters, 0.98 * actual);
  EXPECT_DOUBLE_EQ(e.state_bytes, 16 * e.parameters);
}

TEST(MemoryEstimate, ASizeThatCannotFitIsAConfigErrorBeforeAnythingIsAllocated) {
  bla::testing::TempDir tmp;
  auto config = bla::config::parse_config(bla::testing::tiny_mqar_config(), "tiny.yaml",
                                          {"model.d_model=16384", "model.layers=64"});
  bla::train::RunOptions options;
  options.run_dir = tmp / "run";
  options.quiet = true;
  try {
    bla::train::train(config, options);
    FAIL() << "expected a refusal";
  } catch (const bla::train::DoesNotFitError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("this run needs at least"), std::string::npos) << what;
    EXPECT_NE(what.find("but cpu has"), std::string::npos) << what;
    EXPECT_NE(what.find("lower model.d_model, model.layers"), std::string::npos) << what;
  }
  EXPECT_FALSE(bla::util::path_exists(tmp / "run")) << "nothing was written";
}

TEST(MemoryEstimate, ReportsGiB) {
  bla::train::MemoryEstimate e;
  e.parameters = 1e9;
  e.state_bytes = 16e9;
  e.activation_bytes = 0;
  try {
    bla::train::check_memory_fits(e, 8.0 * (1 << 30), "cuda:0");
    FAIL();
  } catch (const bla::config::ConfigError& err) {
    EXPECT_NE(std::string(err.what()).find("needs at least 14.9 GiB (1e+09 parameters"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("but cuda:0 has 8.0 GiB"), std::string::npos) << err.what();
  }
  EXPECT_NO_THROW(bla::train::check_memory_fits(e, 20e9, "cuda:0"));
}

}  // namespace
