// The parts the training step is made of, each against a plain reference:
// the fused LM head + cross-entropy against full logits and autograd
// (float64), the feeder against the data order, the optimizer's skip flag,
// and the device-side step metrics.
#include "bla/model/head_loss.h"
#include "bla/tasks/mqar.h"
#include "bla/tasks/task.h"
#include "bla/train/data_order.h"
#include "bla/train/feeder.h"
#include "bla/train/optimizer.h"
#include "bla/train/step_metrics.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <thread>
#include <tuple>

#include "support/tensor_checks.h"
#include "support/twin_linears.h"

using bla::testing::max_abs_diff;

namespace {

struct HeadProblem {
  torch::Tensor hidden, weight, targets;
};

HeadProblem head_problem(int64_t rows, int64_t d, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  auto options = torch::TensorOptions().dtype(torch::kDouble);
  HeadProblem p{torch::randn({rows, d}, options), torch::randn({vocab, d}, options) * 0.5,
                torch::randint(0, vocab, {rows}, torch::kLong)};
  // Every third row is not scored.
  for (int64_t r = 0; r < rows; r += 3) p.targets[r] = bla::tasks::kIgnoreIndex;
  return p;
}

TEST(HeadLoss, FusedEqualsFullLogitsInFloat64ForEveryChunking) {
  for (int64_t chunk : {0, 1, 4, 7, 64}) {
    auto p = head_problem(23, 16, 37, 5);
    auto h1 = p.hidden.clone().requires_grad_(true), w1 = p.weight.clone().requires_grad_(true);
    auto h2 = p.hidden.clone().requires_grad_(true), w2 = p.weight.clone().requires_grad_(true);
    auto fused = bla::model::head_cross_entropy(h1, w1, p.targets, chunk);
    auto ref = bla::model::head_cross_entropy_reference(h2, w2, p.targets);
    (fused.loss * 1.7).backward();
    (ref.loss * 1.7).backward();
    EXPECT_LT(std::abs(fused.loss.item<double>() - ref.loss.item<double>()), 1e-12) << chunk;
    EXPECT_EQ(fused.correct.item<double>(), ref.correct.item<double>()) << chunk;
    EXPECT_EQ(fused.count.item<double>(), 15.0) << chunk;
    EXPECT_LT(max_abs_diff(h1.grad(), h2.grad()), 1e-12) << chunk;
    EXPECT_LT(max_abs_diff(w1.grad(), w2.grad()), 1e-12) << chunk;
    EXPECT_EQ(h1.grad()[0].abs().sum().item<double>(), 0.0) << "an unscored row gets no gradient";
  }
}

TEST(HeadLoss, NoScoredRowGivesZeroLossAndNoNaN) {
  auto p = head_problem(4, 8, 11, 2);
  p.targets.fill_(bla::tasks::kIgnoreIndex);
  auto h = p.hidden.clone().requires_grad_(true);
  auto out = bla::model::head_cross_entropy(h, p.weight, p.targets);
  out.loss.backward();
  EXPECT_EQ(out.loss.item<double>(), 0.0);
  EXPECT_EQ(out.count.item<double>(), 0.0);
  EXPECT_TRUE(torch::isfinite(h.grad()).all().item<bool>());
}

TEST(HeadLoss, Float32MatchesFloat64Reference) {
  auto p = head_problem(50, 32, 257, 9);
  auto h = p.hidden.to(torch::kFloat).requires_grad_(true);
  auto fused = bla::model::head_cross_entropy(h, p.weight.to(torch::kFloat), p.targets, 8);
  auto ref = bla::model::head_cross_entropy_reference(p.hidden, p.weight, p.targets);
  EXPECT_LT(std::abs(fused.loss.item<double>() - ref.loss.item<double>()) / ref.loss.item<double>(), 1e-6);
}

// A task whose example i is the tokens (i, i+1, ...) with the last two
// positions scored (targets 7 * i and 7 * i + 1).
class CountingTask : public bla::tasks::Task {
 public:
  std::string name() const override { return "counting"; }
  int64_t vocab_size() const override { return 1000; }
  int64_t seq_len() const override { return 5; }
  int64_t num_examples(bla::tasks::Split) const override { return 10; }
  int64_t max_scored_per_example() const override { return 3; }
  bla::tasks::Batch batch(bla::tasks::Split, const std::vector<int64_t>& indices) const override {
    const int64_t B = static_cast<int64_t>(indices.size());
    auto inputs = torch::empty({B, 5}, torch::kLong);
    auto targets = torch::full({B, 5}, bla::tasks::kIgnoreIndex, torch::kLong);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < 5; ++t) inputs[b][t] = indices[b] + t;
      targets[b][3] = 7 * indices[b];
      targets[b][4] = 7 * indices[b] + 1;
    }
    return {inputs, targets, {}};
  }
};

TEST(Feeder, ScoredRowsIndexTheTargetsAndPadWithIgnoredRows) {
  CountingTask task;
  auto batch = task.batch(bla::tasks::Split::kTrain, {4, 2});
  auto exact = bla::train::scored_rows(batch, 0);
  EXPECT_TRUE(torch::equal(exact.rows, torch::tensor({3, 4, 8, 9}, torch::kLong)));
  EXPECT_TRUE(torch::equal(exact.targets, torch::tensor({28, 29, 14, 15}, torch::kLong)));
  auto padded = bla::train::scored_rows(batch, 6);
  EXPECT_TRUE(torch::equal(padded.rows, torch::tensor({3, 4, 8, 9, 0, 0}, torch::kLong)));
  EXPECT_TRUE(torch::equal(padded.targets, torch::tensor({28, 29, 14, 15, -100, -100}, torch::kLong)));
  EXPECT_THROW(bla::train::scored_rows(batch, 3), std::logic_error);
}

TEST(Feeder, PadLengthPadsTheInputsAtTheirEndAndMovesTheRows) {
  CountingTask task;
  const auto m = bla::train::scored_rows(task.batch(bla::tasks::Split::kTrain, {4, 2}), 6);
  const auto padded = bla::train::pad_length(m, 8);
  EXPECT_TRUE(torch::equal(padded.inputs, torch::tensor({4, 5, 6, 7, 8, 0, 0, 0, 2, 3, 4, 5, 6, 0, 0, 0}, torch::kLong)
                                              .reshape({2, 8})));
  // b * 5 + t becomes b * 8 + t; the padding rows (index 0) stay 0.
  EXPECT_TRUE(torch::equal(padded.rows, torch::tensor({3, 4, 11, 12, 0, 0}, torch::kLong)));
  EXPECT_TRUE(torch::equal(padded.targets, m.targets));
  EXPECT_TRUE(torch::equal(bla::train::pad_length(m, 5).inputs, m.inputs));
  EXPECT_THROW(bla::train::pad_length(m, 4), std::logic_error);
  // The feeder pads every micro-batch so when told to.
  bla::train::FeederOptions options;
  options.micro_batch = 2;
  options.pad_rows_to = 6;
  options.pad_length_to = 7;
  options.ahead = 0;
  bla::train::BatchFeeder feeder(task, bla::train::DataOrder(10, 3), [](const std::vector<int64_t>& g) { return g; },
                                 options);
  const auto step = feeder.next();
  ASSERT_EQ(step.micro.size(), 1u);
  EXPECT_EQ(step.micro[0].inputs.sizes(), (std::vector<int64_t>{2, 7}));
  EXPECT_TRUE(torch::equal(step.micro[0].rows.narrow(0, 0, 4), torch::tensor({3, 4, 10, 11}, torch::kLong)));
}

// CountingTask whose batches may be built on several threads at once, each
// taking longer the smaller its first index, so that steps built side by
// side finish out of order.
class ConcurrentCountingTask : public CountingTask {
 public:
  bool concurrent_batches() const override { return true; }
  bla::tasks::Batch batch(bla::tasks::Split split, const std::vector<int64_t>& indices) const override {
    std::this_thread::sleep_for(std::chrono::milliseconds(indices.empty() ? 0 : 9 - indices.front() % 10));
    return CountingTask::batch(split, indices);
  }
};

TEST(Feeder, AheadOnThreadsGivesTheDataOrdersBatchesAndPositions) {
  CountingTask serial;
  ConcurrentCountingTask concurrent;
  auto identity = [](const std::vector<int64_t>& g) { return g; };
  const std::vector<std::tuple<int64_t, int64_t, const bla::tasks::Task*>> cases{
      {0, 1, &serial}, {1, 1, &serial}, {3, 1, &serial}, {3, 3, &serial}, {3, 3, &concurrent}, {5, 4, &concurrent}};
  for (const auto& [ahead, threads, task] : cases) {
    bla::train::DataOrder reference(10, 11);
    reference.set_position(4);
    bla::train::DataOrder order(10, 11);
    order.set_position(4);
    bla::train::FeederOptions options;
    options.micro_batch = 3;
    options.grad_accum = 2;
    options.ahead = ahead;
    options.threads = threads;
    bla::train::BatchFeeder feeder(*task, order, identity, options);
    for (int step = 0; step < 12; ++step) {
      auto batch = feeder.next();
      ASSERT_EQ(batch.micro.size(), 2u);
      for (const auto& micro : batch.micro) {
        auto expected = serial.batch(bla::tasks::Split::kTrain, reference.next(3));
        EXPECT_TRUE(torch::equal(micro.inputs, expected.inputs))
            << "ahead " << ahead << " threads " << threads << " step " << step;
      }
      EXPECT_EQ(batch.data_position, reference.position());
    }
  }
}

TEST(Feeder, MqarBatchesBuiltOnFourThreadsAreTheOnesBuiltInline) {
  bla::tasks::MqarOptions mqar;
  mqar.vocab_size = 512;
  mqar.seq_len = 64;
  mqar.num_kv_pairs = 4;
  mqar.train_examples = 300;
  const bla::tasks::MqarTask task(mqar, 5);
  ASSERT_TRUE(task.concurrent_batches());
  auto identity = [](const std::vector<int64_t>& g) { return g; };
  auto options = [](int64_t ahead, int64_t threads) {
    bla::train::FeederOptions o;
    o.micro_batch = 16;
    o.pad_rows_to = 16 * 4;
    o.ahead = ahead;
    o.threads = threads;
    return o;
  };
  bla::train::BatchFeeder inline_feeder(task, bla::train::DataOrder(300, 2), identity, options(0, 1));
  bla::train::BatchFeeder threaded(task, bla::train::DataOrder(300, 2), identity, options(6, 4));
  for (int step = 0; step < 40; ++step) {  // past an epoch: the order reshuffles
    const auto want = inline_feeder.next(), got = threaded.next();
    EXPECT_EQ(got.data_position, want.data_position);
    EXPECT_TRUE(torch::equal(got.micro[0].inputs, want.micro[0].inputs)) << "step " << step;
    EXPECT_TRUE(torch::equal(got.micro[0].rows, want.micro[0].rows)) << "step " << step;
    EXPECT_TRUE(torch::equal(got.micro[0].targets, want.micro[0].targets)) << "step " << step;
  }
}

TEST(Feeder, AnErrorWhileBuildingReachesTheTrainer) {
  CountingTask task;
  bla::train::DataOrder order(10, 1);
  bla::train::FeederOptions options;
  options.micro_batch = 2;
  options.pad_rows_to = 3;  // two examples have 4 scored rows
  options.ahead = 2;
  bla::train::BatchFeeder feeder(task, order, [](const std::vector<int64_t>& g) { return g; }, options);
  EXPECT_THROW(feeder.next(), std::logic_error);
}

bla::config::TrainConfig adamw_config() {
  bla::config::TrainConfig t;
  t.lr = 0.01;
  t.weight_decay = 0.1;
  return t;
}

// The same loss's gradients through both twin layers, each optimizer's old ones dropped first.
template <typename Theirs>
void fresh_gradients(bla::train::Optimizer& ours, Theirs& theirs, torch::nn::Linear& a, torch::nn::Linear& b,
                     const torch::Tensor& x) {
  ours.zero_grad();
  theirs.zero_grad();
  a(x).pow(2).sum().backward();
  b(x).pow(2).sum().backward();
}

TEST(Optimizer, StepsLikeTorchAdamWAndASkipChangesNothing) {
  torch::manual_seed(0);
  auto [a, b] = bla::testing::twin_linears(4, 3);
  auto t = adamw_config();
  bla::train::Optimizer ours(*a, t, /*fused=*/true);  // on the CPU: the LibTorch form
  EXPECT_FALSE(ours.fused());
  torch::optim::AdamW theirs({torch::optim::OptimizerParamGroup(std::vector<torch::Tensor>{b->weight},
                                                                std::make_unique<torch::optim::AdamWOptions>(
                                                                    torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).weight_decay(0.1))),
                              torch::optim::OptimizerParamGroup(std::vector<torch::Tensor>{b->bias},
                                                                std::make_unique<torch::optim::AdamWOptions>(
                                                                    torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).weight_decay(0.0)))});
  auto x = torch::randn({5, 4});
  for (int step = 0; step < 4; ++step) {
    fresh_gradients(ours, theirs, a, b, x);
    const bool skip = step == 2;
    auto before = a->weight.clone();
    ours.step(torch::full({}, skip ? 1.0f : 0.0f));
    if (skip) {
      EXPECT_TRUE(torch::equal(a->weight, before)) << "a skipped step left the weight alone";
    } else {
      theirs.step();
    }
    EXPECT_TRUE(torch::equal(a->weight, b->weight)) << step;
    EXPECT_TRUE(torch::equal(a->bias, b->bias)) << step;
  }
}

// A gradient divisor (StepRunner's clip, on the fused path): the LibTorch
// form steps as torch::optim::AdamW on the gradients divided by it, bit for
// bit; a skipped step neither divides them nor moves a weight.
TEST(Optimizer, StepsOnTheGradientsDividedByTheDivisor) {
  torch::manual_seed(2);
  auto [a, b] = bla::testing::twin_linears(4, 3);
  auto t = adamw_config();
  bla::train::Optimizer ours(*a, t, /*fused=*/false), theirs(*b, t, /*fused=*/false);
  auto x = torch::randn({5, 4});
  for (int step = 0; step < 4; ++step) {
    fresh_gradients(ours, theirs, a, b, x);
    const float divisor = 1.0f + 3.0f * step;
    const bool skip = step == 2;
    const auto grad = a->weight.grad().clone();
    ours.step(torch::full({}, skip ? 1.0f : 0.0f), torch::full({}, divisor));
    if (skip) {
      EXPECT_TRUE(torch::equal(a->weight.grad(), grad)) << "a skipped step left the gradient alone";
    } else {
      torch::NoGradGuard no_grad;
      for (auto& p : b->parameters()) p.mutable_grad().div_(torch::full({}, divisor));
      theirs.step(torch::zeros({}));
    }
    EXPECT_TRUE(torch::equal(a->weight, b->weight)) << step;
    EXPECT_TRUE(torch::equal(a->bias, b->bias)) << step;
  }
}

TEST(StepMetrics, SumsAppliedStepsAndRemembersTheFirstBadOne) {
  bla::train::StepMetrics m(torch::kCPU);
  m.set_step(10);
  auto scalar = [](double v) { return torch::full({}, v, torch::kDouble); };
  auto flag = [](float v) { return torch::full({}, v); };
  m.add_micro(torch::full({}, 2.0f), scalar(3), scalar(4), 2.0);
  m.add_micro(torch::full({}, 4.0f), scalar(1), scalar(4), 2.0);
  m.end_step(torch::full({}, 0.5f), flag(0), flag(0));  // step 11: loss (2 + 4) / 2
  m.add_micro(torch::full({}, NAN), scalar(9), scalar(9), 1.0);
  m.end_step(torch::full({}, 7.0f), flag(1), flag(1));  // step 12: bad, skipped
  m.add_micro(torch::full({}, 1.0f), scalar(2), scalar(8), 1.0);
  m.end_step(torch::full({}, 0.25f), flag(0), flag(1));  // step 13: fine, but halted
  auto t = m.read();
  EXPECT_DOUBLE_EQ(t.loss, 3.0);
  EXPECT_DOUBLE_EQ(t.correct, 4.0);
  EXPECT_DOUBLE_EQ(t.count, 8.0);
  EXPECT_EQ(t.steps, 1);
  EXPECT_DOUBLE_EQ(t.grad_norm, 0.5);
  EXPECT_EQ(t.skipped, 2);
  EXPECT_EQ(t.first_bad_step, 12);
  EXPECT_TRUE(std::isnan(t.first_bad_loss));
  EXPECT_DOUBLE_EQ(t.first_bad_grad_norm, 7.0);
  m.reset_window();
  t = m.read();
  EXPECT_EQ(t.steps, 0);
  EXPECT_EQ(t.skipped, 2);
}

}  // namespace
