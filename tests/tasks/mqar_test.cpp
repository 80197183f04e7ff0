#include "bla/tasks/mqar.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

using namespace bla::tasks;

namespace {

MqarOptions small() {
  MqarOptions o;
  o.vocab_size = 128;
  o.seq_len = 64;
  o.num_kv_pairs = 8;
  return o;
}

TEST(Mqar, ExamplesAreDeterministicFromSeedSplitAndIndex) {
  MqarGenerator a(small(), 7), b(small(), 7), c(small(), 8);
  EXPECT_EQ(a.example(Split::kTrain, 5).inputs, b.example(Split::kTrain, 5).inputs);
  EXPECT_NE(a.example(Split::kTrain, 5).inputs, a.example(Split::kTrain, 6).inputs);
  EXPECT_NE(a.example(Split::kTrain, 5).inputs, a.example(Split::kTest, 5).inputs);
  EXPECT_NE(a.example(Split::kTrain, 5).inputs, c.example(Split::kTrain, 5).inputs);
}

// The examples are frozen: every version generates the ones earlier runs
// trained and were scored on (150 examples of the three splits hashed, and
// the first tokens of one, as the generator gave them at commit bacb31c).
TEST(Mqar, ExamplesAreTheOnesEarlierVersionsGenerated) {
  MqarOptions o;
  o.vocab_size = 8192;
  o.seq_len = 64;
  o.num_kv_pairs = 8;
  o.validation_examples = 10;
  MqarGenerator gen(o, 42);
  uint64_t hash = 1469598103934665603ull;  // FNV-1a over the tokens and targets
  for (const Split split : {Split::kTrain, Split::kTest, Split::kValidation})
    for (int64_t i = 0; i < 50; ++i) {
      const auto ex = gen.example(split, i);
      for (size_t t = 0; t < ex.inputs.size(); ++t) {
        hash = (hash ^ static_cast<uint64_t>(ex.inputs[t] + 1)) * 1099511628211ull;
        hash = (hash ^ static_cast<uint64_t>(ex.targets[t] + 2)) * 1099511628211ull;
      }
    }
  EXPECT_EQ(hash, 6538694812370654412ull);
  const auto ex = gen.example(Split::kTrain, 7);
  const std::vector<int64_t> first(ex.inputs.begin(), ex.inputs.begin() + 20);
  EXPECT_EQ(first, (std::vector<int64_t>{303,  8190, 1641, 4103, 909,  6099, 1676, 5891, 3898, 4246,
                                         3486, 5711, 2721, 4517, 2567, 5020, 1641, 758,  840,  2094}));
}

TEST(Mqar, StructureFollowsTheDefinition) {
  auto o = small();
  MqarGenerator gen(o, 1);
  for (int64_t i = 0; i < 200; ++i) {
    auto ex = gen.example(Split::kTrain, i);
    ASSERT_EQ(static_cast<int64_t>(ex.inputs.size()), o.seq_len);
    ASSERT_EQ(static_cast<int64_t>(ex.targets.size()), o.seq_len);
    std::map<int64_t, int64_t> value_of;
    std::set<int64_t> keys, values;
    for (int64_t p = 0; p < o.num_kv_pairs; ++p) {
      int64_t k = ex.inputs[2 * p], v = ex.inputs[2 * p + 1];
      EXPECT_GE(k, 1);
      EXPECT_LT(k, o.vocab_size / 2);
      EXPECT_GE(v, o.vocab_size / 2);
      EXPECT_LT(v, o.vocab_size);
      keys.insert(k);
      values.insert(v);
      value_of[k] = v;
    }
    EXPECT_EQ(static_cast<int64_t>(keys.size()), o.num_kv_pairs) << "keys are distinct";
    EXPECT_EQ(static_cast<int64_t>(values.size()), o.num_kv_pairs) << "values are distinct";
    // Exactly P supervised positions, each in the query area at an even
    // offset, holding a key whose target is that key's value.
    int64_t supervised = 0;
    std::set<int64_t> queried;
    for (int64_t t = 0; t < o.seq_len; ++t) {
      if (ex.targets[t] == kIgnoreIndex) continue;
      ++supervised;
      EXPECT_GE(t, 2 * o.num_kv_pairs);
      EXPECT_EQ((t - 2 * o.num_kv_pairs) % 2, 0);
      ASSERT_TRUE(value_of.count(ex.inputs[t]));
      EXPECT_EQ(ex.targets[t], value_of[ex.inputs[t]]);
      queried.insert(ex.inputs[t]);
    }
    EXPECT_EQ(supervised, o.num_kv_pairs);
    EXPECT_EQ(queried, keys) << "every key is queried once";
  }
}

TEST(Mqar, WithoutRandomNonQueriesTheQueryAreaIsZeroElsewhere) {
  auto o = small();
  o.random_non_queries = false;
  MqarGenerator gen(o, 2);
  auto ex = gen.example(Split::kTest, 0);
  for (int64_t t = 2 * o.num_kv_pairs; t < o.seq_len; ++t) {
    if (ex.targets[t] == kIgnoreIndex) EXPECT_EQ(ex.inputs[t], 0) << "position " << t;
  }
}

TEST(Mqar, ShortGapsAreFarMoreLikely) {
  // The power law with a = 0.01 puts most queries right after the context.
  auto o = small();
  o.num_kv_pairs = 1;
  MqarGenerator gen(o, 3);
  int64_t first_slot = 0, n = 2000;
  for (int64_t i = 0; i < n; ++i) {
    auto ex = gen.example(Split::kTrain, i);
    if (ex.targets[2] != kIgnoreIndex) ++first_slot;
  }
  // P(gap index 0) = w_1 / sum(w) for space = 31: about 0.30 for a = 0.01.
  double expected = 0;
  {
    double total = 0;
    for (int g = 1; g <= 31; ++g) total += 0.01 * std::pow(g, 0.01 - 1);
    expected = 0.01 / total;
  }
  EXPECT_NEAR(static_cast<double>(first_slot) / n, expected, 0.04);
}

TEST(Mqar, BatchesMatchExamples) {
  MqarTask task(small(), 4);
  auto batch = task.batch(Split::kTrain, {3, 9});
  auto ex = task.generator().example(Split::kTrain, 9);
  ASSERT_EQ(batch.inputs.sizes(), (std::vector<int64_t>{2, 64}));
  for (int64_t t = 0; t < 64; ++t) {
    EXPECT_EQ(batch.inputs[1][t].item<int64_t>(), ex.inputs[t]);
    EXPECT_EQ(batch.targets[1][t].item<int64_t>(), ex.targets[t]);
  }
}

TEST(Mqar, ImpossibleOptionsAreRejected) {
  auto o = small();
  o.num_kv_pairs = 17;
  EXPECT_THROW(
      {
        try {
          MqarGenerator(o, 0);
        } catch (const std::invalid_argument& e) {
          EXPECT_STREQ(e.what(), "mqar: num_kv_pairs (17) must be in [1, seq_len/4 = 16]: raise seq_len or lower num_kv_pairs");
          throw;
        }
      },
      std::invalid_argument);
  o = small();
  o.vocab_size = 64;
  EXPECT_THROW(MqarGenerator(o, 0), std::invalid_argument);
}

}  // namespace
