// The in-context n-gram predictors of RegBench (tasks/regbench_ngram.h):
// their distributions on a hand-made sequence, their metrics on languages a
// bigram predictor knows after one pass, and bla-baseline.
#include "bla/tasks/regbench_ngram.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace bla::tasks;
using bla::testing::run_command;

TEST(RegbenchNgram, DistributionsCountWhatFollowedTheHistoryEarlierAndBackOff) {
  // Symbols 0, 1, 2; separator 3: "a b | a b | a".
  const std::vector<int64_t> tokens = {0, 1, 3, 0, 1, 3, 0};
  using P = std::vector<double>;
  EXPECT_EQ(ngram_distribution(tokens, 6, 1, 3), (P{0.6, 0.4, 0.0}));  // the symbols so far: 3 a, 2 b
  EXPECT_EQ(ngram_distribution(tokens, 6, 2, 3), (P{0.0, 1.0, 0.0}));  // after "a" came "b", twice
  EXPECT_EQ(ngram_distribution(tokens, 6, 3, 3), (P{0.0, 1.0, 0.0}));  // after "| a" came "b", once
  // After the first "|" nothing has followed a "|" yet: back off to the symbols so far.
  EXPECT_EQ(ngram_distribution(tokens, 2, 2, 3), (P{0.5, 0.5, 0.0}));
  EXPECT_EQ(ngram_distribution(tokens, 0, 3, 3), (P{1.0, 0.0, 0.0}));
  EXPECT_THROW(ngram_distribution(tokens, 0, 0, 3), std::invalid_argument);
}

TEST(RegbenchNgram, ABigramPredictorLearnsOneEdgePerStateLanguagesInContext) {
  // Two states, one edge each: a* or (ab)*, so the previous symbol decides the next.
  RegbenchOptions o;
  o.max_num_nodes = 2;
  o.max_outgoing_edges = 2;
  o.train_automata = 50;
  o.test_automata = 40;
  o.validation_automata = 0;
  RegbenchGenerator generator(o, 1);
  const auto unigram = ngram_metrics(generator, Split::kTest, 1);
  const auto bigram = ngram_metrics(generator, Split::kTest, 2);
  EXPECT_EQ(unigram.at("symbol_positions"), bigram.at("symbol_positions"));
  EXPECT_GT(bigram.at("symbol_positions"), 1000);
  EXPECT_GT(bigram.at("accuracy"), 0.97);
  EXPECT_LT(unigram.at("accuracy"), 0.9);
  EXPECT_LT(bigram.at("tvd"), unigram.at("tvd"));
  EXPECT_DOUBLE_EQ(bigram.at("tvd_seq_icl"), 2 * bigram.at("tvd"));
}

TEST(RegbenchNgram, BlaBaselinePrintsEachOrderAndRefusesOtherTasks) {
  const std::string program = std::string(BLA_BINARY_DIR) + "/src/bla-baseline ";
  const std::string source = BLA_SOURCE_DIR;
  auto run = run_command(program + source + "/configs/regbench_bla.yaml --ngram 1,2 --max-examples 10 2>&1", 120);
  ASSERT_EQ(run.status, 0) << run.output;
  const auto result = nlohmann::json::parse(run.output);
  EXPECT_EQ(result["split"], "test");
  ASSERT_TRUE(result["predictors"].contains("ngram-1")) << run.output;
  ASSERT_TRUE(result["predictors"].contains("ngram-2")) << run.output;
  EXPECT_GT(result["predictors"]["ngram-2"]["symbol_positions"].get<double>(), 100);
  auto other = run_command(program + source + "/configs/mqar_bla.yaml 2>&1", 60);
  EXPECT_EQ(other.status, 2) << other.output;
  EXPECT_NE(other.output.find("bla-baseline: " + source +
                              "/configs/mqar_bla.yaml: data.task is mqar; the n-gram predictors are defined for regbench only"),
            std::string::npos)
      << other.output;
}
