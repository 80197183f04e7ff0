// Ensembles (model/ensemble.h, train/ensemble_trainer.h): E models trained as
// one batched model, each member equal to the solo run of its config.
#include "bla/config/members.h"
#include "bla/mixers/mixer.h"
#include "bla/model/ensemble.h"
#include "bla/model/head_loss.h"
#include "bla/tasks/task.h"
#include "bla/train/checkpoint.h"
#include "bla/train/ensemble_trainer.h"
#include "bla/train/feeder.h"
#include "bla/train/memory_estimate.h"
#include "bla/train/task_and_model.h"
#include "bla/train/trainer.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <map>

using bla::testing::TempDir;
using bla::testing::tiny_mqar_config;

namespace {

const std::map<std::string, std::string>& small_mixers() { return bla::testing::small_mixer_params(); }

std::string mixer_yaml(const std::string& mixer) {
  return tiny_mqar_config(mixer, "  mixers: {" + mixer + ": " + small_mixers().at(mixer) + "}\n");
}

// The config file `yaml` written into `dir`, expanded into members.
bla::config::MemberConfigs members_of(const TempDir& dir, const std::string& yaml,
                                      const std::vector<std::string>& overrides) {
  const std::string path = dir / "ensemble.yaml";
  bla::util::write_file_atomically(path, yaml);
  return bla::config::load_member_configs(path, overrides);
}

std::vector<nlohmann::json> train_members(bla::config::MemberConfigs members, const std::vector<std::string>& dirs,
                                          const std::string& resume = "", bool regroup = false) {
  bla::train::EnsembleOptions options;
  options.run_dirs = dirs;
  options.labels = members.labels;
  options.resume = resume;
  options.regroup = regroup;
  options.quiet = true;
  return bla::train::train_ensemble(std::move(members.configs), options);
}

nlohmann::json train_solo(const bla::config::Config& config, const std::string& dir) {
  bla::train::RunOptions options;
  options.run_dir = dir;
  options.quiet = true;
  return bla::train::train(config, options);
}

// The losses metrics.jsonl logged for training, in order.
std::vector<double> train_losses(const std::string& dir) {
  std::vector<double> losses;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    if (record.at("split") == "train") losses.push_back(record.at("loss").get<double>());
  }
  return losses;
}

void expect_relatively_close(const std::vector<double>& member, const std::vector<double>& solo, double tolerance,
                             const std::string& what) {
  ASSERT_EQ(member.size(), solo.size()) << what;
  ASSERT_FALSE(solo.empty()) << what;
  for (size_t i = 0; i < solo.size(); ++i) {
    EXPECT_NEAR(member[i], solo[i], tolerance * std::fabs(solo[i])) << what << ", logged loss " << i;
  }
}

// Trains `yaml` with `overrides` as an ensemble and every member alone, and
// holds each member's logged losses and test results to its solo run's.
void expect_members_equal_solo_runs(const std::string& yaml, const std::vector<std::string>& overrides,
                                    size_t expected_members, double tolerance) {
  TempDir dir;
  auto members = members_of(dir, yaml, overrides);
  ASSERT_EQ(members.configs.size(), expected_members);
  std::vector<std::string> dirs;
  for (const auto& label : members.labels) dirs.push_back(dir / ("member-" + label));
  auto solo_configs = members.configs;
  auto summaries = train_members(members, dirs);
  ASSERT_EQ(summaries.size(), expected_members);
  for (size_t e = 0; e < expected_members; ++e) {
    const std::string solo_dir = dir / ("solo-" + std::to_string(e));
    auto solo = train_solo(solo_configs[e], solo_dir);
    const std::string what = "member " + members.labels[e];
    expect_relatively_close(train_losses(dirs[e]), train_losses(solo_dir), tolerance, what);
    EXPECT_NEAR(summaries[e]["test"]["loss"].get<double>(), solo["test"]["loss"].get<double>(),
                tolerance * solo["test"]["loss"].get<double>())
        << what;
    EXPECT_NEAR(summaries[e]["test"]["accuracy"].get<double>(), solo["test"]["accuracy"].get<double>(), 1e-12) << what;
  }
}

}  // namespace

// The batched forward: member e's logits are the solo model's, in float64.
class EnsembleEveryMixer : public ::testing::TestWithParam<std::string> {};

TEST_P(EnsembleEveryMixer, StackedForwardEqualsEachMembersOwnForward) {
  if (small_mixers().count(GetParam()) == 0) {
    FAIL() << "no small settings for mixer type '" << GetParam() << "': add them to small_mixers()";
  }
  auto config = bla::config::parse_config(mixer_yaml(GetParam()), "ensemble.yaml");
  const int64_t vocab = 23, T = 16, B = 2, E = 3;
  std::vector<bla::model::LanguageModel> solos;
  for (int64_t e = 0; e < E; ++e) {
    torch::manual_seed(10 + e);
    solos.emplace_back(config.model, vocab, 64);
    solos.back()->to(torch::kDouble);
    torch::NoGradGuard no_grad;  // non-zero gains and biases so every parameter carries signal
    for (auto& p : solos.back()->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  bla::model::LanguageModel ensemble(config.model, vocab, 64);
  ensemble->to(torch::kDouble);
  bla::model::stack_members(*ensemble, solos);
  EXPECT_EQ(bla::model::members_of(*ensemble), E);
  EXPECT_EQ(bla::model::members_of(*solos.front()), 0);
  auto tokens = torch::randint(vocab, {E * B, T}, torch::kLong);
  auto joint = ensemble->forward(tokens);  // (E*B, T, vocab)
  for (int64_t e = 0; e < E; ++e) {
    auto alone = solos[e]->forward(tokens.narrow(0, e * B, B));
    EXPECT_TRUE(torch::allclose(joint.narrow(0, e * B, B), alone, 1e-10, 1e-12))
        << GetParam() << " member " << e << ": max difference "
        << (joint.narrow(0, e * B, B) - alone).abs().max().item<double>();
  }
  // And back out: a member copied into a solo model is that member.
  bla::model::LanguageModel copy(config.model, vocab, 64);
  copy->to(torch::kDouble);
  bla::model::copy_member_out(*ensemble, 1, *copy);
  EXPECT_TRUE(torch::equal(copy->forward(tokens.narrow(0, 0, B)), solos[1]->forward(tokens.narrow(0, 0, B))));
}

// A captured step pads every batch's inputs at their end to one length
// (train::pad_length; RegBench's batches are as long as their longest row).
// No scored row may see that padding: the loss over the scored rows and
// every parameter's gradient are those of the unpadded batch, in float64,
// with T and the padded length on either side of the mixers' chunks.
TEST_P(EnsembleEveryMixer, PaddingABatchAtItsEndChangesNoScoredRowsLossNorAnyGradient) {
  if (small_mixers().count(GetParam()) == 0) {
    FAIL() << "no small settings for mixer type '" << GetParam() << "': add them to small_mixers()";
  }
  auto config = bla::config::parse_config(mixer_yaml(GetParam()), "ensemble.yaml");
  const int64_t vocab = 23, B = 3, T = 13, padded_to = 40;
  torch::manual_seed(4);
  bla::model::LanguageModel model(config.model, vocab, 64);
  model->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;  // non-zero gains and biases so every parameter carries signal
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  auto targets = torch::randint(vocab, {B, T}, torch::kLong);
  targets.index_put_({1, torch::indexing::Slice(9, T)}, bla::tasks::kIgnoreIndex);  // a shorter row
  targets.index_put_({torch::indexing::Slice(), 0}, bla::tasks::kIgnoreIndex);
  const bla::tasks::Batch batch{torch::randint(vocab, {B, T}, torch::kLong), targets, {}};
  const auto exact = bla::train::scored_rows(batch, 0);
  const auto padded = bla::train::pad_length(bla::train::scored_rows(batch, B * T), padded_to);
  ASSERT_EQ(padded.inputs.size(1), padded_to);
  const auto loss_and_grads = [&](const bla::train::MicroBatch& m) {
    model->zero_grad();
    auto hidden = model->hidden(m.inputs);
    auto rows = hidden.reshape({-1, hidden.size(-1)}).index_select(0, m.rows);
    auto head = bla::model::head_cross_entropy_reference(rows, model->head_weight(), m.targets);
    head.loss.backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    return std::make_pair(head.loss.item<double>(), grads);
  };
  const auto [loss, grads] = loss_and_grads(exact);
  const auto [padded_loss, padded_grads] = loss_and_grads(padded);
  EXPECT_NEAR(padded_loss, loss, 1e-12 * std::fabs(loss)) << GetParam();
  ASSERT_EQ(grads.size(), padded_grads.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    ASSERT_EQ(grads[i].defined(), padded_grads[i].defined()) << GetParam() << " parameter " << i;
    if (grads[i].defined()) {
      EXPECT_TRUE(torch::allclose(padded_grads[i], grads[i], 1e-10, 1e-12))
          << GetParam() << " parameter " << i << ": max difference " << (padded_grads[i] - grads[i]).abs().max().item<double>();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Mixers, EnsembleEveryMixer, ::testing::ValuesIn(bla::mixers::MixerRegistry::instance().names()));

TEST(EnsembleTraining, FourMembersOverFiftyStepsEqualTheirSoloRuns) {
  // Seeds x learning rates: four members, each its own data, initialisation and rate.
  expect_members_equal_solo_runs(tiny_mqar_config(),
                                 {"run.seed=[3, 4]", "train.lr=[3.0e-3, 1.0e-3]", "train.steps=50", "train.log_every=1",
                                  "train.checkpoint_every=0"},
                                 4, 1e-6);
}

TEST(EnsembleTraining, EveryMixerTrainsAsAnEnsembleLikeItsSoloRuns) {
  for (const auto& [mixer, settings] : small_mixers()) {
    SCOPED_TRACE(mixer);
    expect_members_equal_solo_runs(mixer_yaml(mixer),
                                   {"run.seed=[3, 4]", "train.steps=8", "train.log_every=1", "train.checkpoint_every=0",
                                    "train.weight_decay=[0.1]"},
                                   2, 1e-6);
  }
}

TEST(EnsembleTraining, ZoologysBlockTrainsAsAnEnsembleLikeItsSoloRuns) {
  // A short convolution before the mixer (one kernel per member) and no MLP.
  expect_members_equal_solo_runs(mixer_yaml("bla"),
                                 {"run.seed=[3, 4]", "model.short_conv=3", "model.mlp=none", "train.steps=8",
                                  "train.log_every=1", "train.checkpoint_every=0"},
                                 2, 1e-6);
}

TEST(EnsembleTraining, RegBenchMembersWhoseBatchesDifferInLengthTrainLikeTheirSoloRuns) {
  // RegBench pads each batch to its longest row, so members with other seeds
  // draw batches of other lengths; the joined batch pads them to the longest.
  const std::string yaml =
      "run: {name: tiny, seed: 3, threads: 1, device: cpu}\n"
      "model: {d_model: 16, layers: 2, heads: 2, mixer: bla, mixers: {bla: {window: 64, slots: 4, chunk: 16}}}\n"
      "data: {task: regbench, min_examples: 2, max_examples: 4, max_word_len: 8, train_automata: 64,\n"
      "       test_automata: 16, validation_automata: 8}\n"
      "train: {batch_size: 4, steps: 6, lr: 3.0e-3, warmup_steps: 1, log_every: 1, eval_examples: 0,\n"
      "        checkpoint_every: 0}\n";
  expect_members_equal_solo_runs(yaml, {"run.seed=[3, 4, 5]"}, 3, 1e-6);
}

// Resuming: the ensemble continues bit for bit from its members' checkpoints,
// from the newest step all members have (here member a also holds step 10,
// as a process killed while it saved could leave it); and a member's
// checkpoint resumes as a solo run too.
TEST(EnsembleTraining, AMembersCheckpointIsASoloCheckpointAndResumesTheEnsembleExactly) {
  TempDir dir;
  const std::vector<std::string> keys = {"run.seed=[5, 6]", "train.steps=10", "train.log_every=1",
                                         "train.checkpoint_every=5"};
  auto members = members_of(dir, tiny_mqar_config(), keys);
  const std::vector<std::string> whole = {dir / "whole-a", dir / "whole-b"};
  train_members(members, whole);
  // The same ensemble stopped at step 5 (a run of 5 steps would decay its rate differently: resume a copy instead).
  const std::vector<std::string> resumed = {dir / "resumed-a", dir / "resumed-b"};
  for (size_t e = 0; e < 2; ++e) {
    bla::util::create_directories(resumed[e] + "/checkpoints");
    bla::util::write_file_atomically(resumed[e] + "/checkpoints/step-00000005.ckpt",
                                     bla::util::read_file(whole[e] + "/checkpoints/step-00000005.ckpt"));
  }
  bla::util::write_file_atomically(resumed[0] + "/checkpoints/step-00000010.ckpt",
                                   bla::util::read_file(whole[0] + "/checkpoints/step-00000010.ckpt"));
  train_members(members, resumed, "auto");
  for (size_t e = 0; e < 2; ++e) {
    auto a = train_losses(whole[e]), b = train_losses(resumed[e]);
    ASSERT_EQ(b.size(), 5u);
    for (size_t i = 0; i < 5; ++i) EXPECT_EQ(a[5 + i], b[i]) << "member " << e << " step " << 6 + i;
  }
  // A member's checkpoint resumes as a solo run too, to the same losses.
  const std::string solo_dir = dir / "solo";
  bla::util::create_directories(solo_dir + "/checkpoints");
  bla::util::write_file_atomically(solo_dir + "/checkpoints/step-00000005.ckpt",
                                   bla::util::read_file(whole[1] + "/checkpoints/step-00000005.ckpt"));
  bla::train::RunOptions options;
  options.run_dir = solo_dir;
  options.resume = "auto";
  options.quiet = true;
  bla::train::train(members.configs[1], options);
  auto a = train_losses(whole[1]), b = train_losses(solo_dir);
  ASSERT_EQ(b.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(a[5 + i], b[i], 1e-6 * std::fabs(a[5 + i])) << "step " << 6 + i;
}

// Regrouping (EnsembleOptions::regroup, bla-train --regroup): members at a
// high rate reach the validation-loss target early, those at a tiny rate
// never do. Once half have finished the run saves the others' checkpoints
// and stops; the others, continued as an ensemble of their own, log the
// losses and end with the results of the ensemble that kept them all.
TEST(EnsembleTraining, ARegroupingEnsembleStopsOnceHalfHaveFinishedAndTheRestContinueAsBefore) {
  TempDir dir;
  // Every combination, the last key fastest: members 1 and 3 train at 1e-2.
  const std::vector<std::string> keys = {
      "run.seed=[5, 6]",          "train.lr=[1.0e-6, 1.0e-2]",    "data.validation_examples=32",
      "train.validation_every=2", "train.early_stop_metric=loss", "train.early_stop_at=4.05",
      "train.log_every=1",        "train.checkpoint_every=0"};
  auto members = members_of(dir, tiny_mqar_config(), keys);
  ASSERT_EQ(members.configs.size(), 4u);
  std::vector<std::string> kept, regrouped;
  for (const auto& label : members.labels) {
    kept.push_back(dir / ("kept-" + label));
    regrouped.push_back(dir / ("regrouped-" + label));
  }
  const auto whole = train_members(members, kept);
  int64_t stop_step = 0;
  for (size_t e : {1u, 3u}) {
    ASSERT_TRUE(whole[e].contains("early_stop")) << "the rate-1e-2 members must stop early: " << whole[e].dump();
    stop_step = std::max(stop_step, whole[e]["early_stop"]["step"].get<int64_t>());  // the second stop makes half
  }
  for (size_t e : {0u, 2u}) EXPECT_FALSE(whole[e].contains("early_stop")) << whole[e].dump();
  ASSERT_LT(stop_step, 12);

  try {
    train_members(members, regrouped, "", /*regroup=*/true);
    FAIL() << "expected RegroupError";
  } catch (const bla::train::RegroupError& error) {
    EXPECT_EQ(std::string(error.what()), "2 of 4 members finished early by step " + std::to_string(stop_step) +
                                             "; the other 2 saved their checkpoints: continue them as an ensemble of "
                                             "their own (--resume auto)");
  }
  for (size_t e : {1u, 3u}) {
    const auto summary = nlohmann::json::parse(bla::util::read_file(regrouped[e] + "/summary.json"));
    EXPECT_EQ(summary["test"], whole[e]["test"]) << "member " << e;
  }
  for (size_t e : {0u, 2u}) {
    EXPECT_FALSE(bla::util::path_exists(regrouped[e] + "/summary.json"));
    const auto saved = bla::train::CheckpointDirectory(regrouped[e] + "/checkpoints", 100).list();
    ASSERT_EQ(saved.size(), 1u);
    EXPECT_NE(saved.front().find("step-" + std::string(8 - std::to_string(stop_step).size(), '0') +
                                 std::to_string(stop_step) + ".ckpt"),
              std::string::npos)
        << saved.front();
  }
  // The two that go on, as an ensemble of their own.
  auto rest = members_of(dir, tiny_mqar_config(), keys);
  rest.configs = {rest.configs[0], rest.configs[2]};
  rest.labels = {rest.labels[0], rest.labels[2]};
  const auto finished = train_members(rest, {regrouped[0], regrouped[2]}, "auto", /*regroup=*/true);
  ASSERT_EQ(finished.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const size_t e = 2 * i;
    EXPECT_EQ(finished[i]["steps"], 12);
    EXPECT_NEAR(finished[i]["test"]["loss"].get<double>(), whole[e]["test"]["loss"].get<double>(),
                1e-6 * whole[e]["test"]["loss"].get<double>())
        << "member " << e;
    expect_relatively_close(train_losses(regrouped[e]), train_losses(kept[e]), 1e-6, "member " + std::to_string(e));
  }
}

TEST(EnsembleTraining, AMemberWhoseLossGoesNonFiniteStopsAloneAndTheOthersFinish) {
  TempDir dir;
  const std::vector<std::string> dirs = {dir / "good", dir / "bad"};
  train_members(members_of(dir, tiny_mqar_config(), {"run.seed=[5, 6]", "train.steps=3", "train.log_every=1"}), dirs);
  // Member seed-6's weights go bad in its step-3 checkpoint; both resume to 6 steps.
  auto members = members_of(dir, tiny_mqar_config(), {"run.seed=[5, 6]", "train.steps=6", "train.log_every=1"});
  bla::testing::poison_tiny_checkpoint(members.configs[1], dirs[1] + "/checkpoints/step-00000003.ckpt");
  try {
    train_members(members, dirs, "auto");
    FAIL() << "expected NonFiniteError";
  } catch (const bla::train::NonFiniteError& error) {
    const std::string what = error.what();
    EXPECT_EQ(what.rfind("member seed-6: step 4: loss is not finite (loss ", 0), 0u) << what;
    EXPECT_NE(what.find("; the other members finished"), std::string::npos) << what;
  }
  EXPECT_EQ(nlohmann::json::parse(bla::util::read_file(dirs[0] + "/summary.json"))["steps"], 6);
  EXPECT_EQ(train_losses(dirs[0]).size(), 6u);
  // The failed member keeps its last good checkpoint; nothing of the bad line is written.
  EXPECT_EQ(train_losses(dirs[1]).size(), 3u);
  EXPECT_EQ(bla::train::CheckpointDirectory(dirs[1] + "/checkpoints", 100).list().size(), 1u);
}

TEST(EnsembleConfig, ListedMemberKeysMakeEveryCombinationLastKeyFastest) {
  TempDir dir;
  auto members = members_of(dir, tiny_mqar_config(), {"run.seed=[1, 2]", "train.lr=[1.0e-3, 3.0e-3, 1.0e-2]"});
  ASSERT_EQ(members.configs.size(), 6u);
  EXPECT_EQ(members.varying, (std::vector<std::string>{"run.seed", "train.lr"}));
  EXPECT_EQ(members.labels.front(), "seed-1_lr-1.0e-3");
  EXPECT_EQ(members.labels.back(), "seed-2_lr-1.0e-2");
  EXPECT_EQ(members.configs[1].run.seed, 1u);
  EXPECT_DOUBLE_EQ(members.configs[1].train.lr, 3e-3);
  EXPECT_EQ(members.configs[3].run.seed, 2u);
  EXPECT_DOUBLE_EQ(members.configs[3].train.lr, 1e-3);
  // A list in the file works the same; a later --set of one value wins over it.
  auto in_file = members_of(dir, tiny_mqar_config() + "", {"run.seed=[7, 8]", "run.seed=9"});
  EXPECT_EQ(in_file.configs.size(), 1u);
  EXPECT_EQ(in_file.configs.front().run.seed, 9u);
}

TEST(EnsembleConfig, OtherListsAndMismatchedOutFoldersAreRefusedClearly) {
  TempDir dir;
  try {
    members_of(dir, tiny_mqar_config(), {"train.lr=[[1, 2]]"});
    FAIL() << "expected ConfigError";
  } catch (const bla::config::ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("train.lr lists"), std::string::npos) << error.what();
  }
  auto members = members_of(dir, tiny_mqar_config(), {"run.seed=[1, 2, 3]"});
  try {
    bla::train::member_run_directories(members.configs.front(), members.labels, {"a", "b"});
    FAIL() << "expected ConfigError";
  } catch (const bla::config::ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              "--out was given 2 times for an ensemble of 3 members; give one folder (members go into folders named by "
              "their values) or one per member");
  }
  EXPECT_EQ(bla::train::member_run_directories(members.configs.front(), members.labels, {"out"}),
            (std::vector<std::string>{"out/seed-1", "out/seed-2", "out/seed-3"}));
  auto twice = members_of(dir, tiny_mqar_config(), {"run.seed=[1, 1]"});
  EXPECT_THROW(bla::train::member_run_directories(twice.configs.front(), twice.labels, {"out"}), bla::config::ConfigError);
}

TEST(EnsembleConfig, AnEnsembleThatCannotFitIsRefusedNamingTheSizeThatFits) {
  TempDir dir;
  // About 3 GiB of parameters, gradients and moments per member. The ensemble is made one member larger than the
  // run's device holds (24 GiB of host memory, or an H200's 141 GB), so the refusal must name exactly how many fit.
  const std::vector<std::string> big = {"model.d_model=2048", "model.layers=4", "model.heads=16"};
  auto one = members_of(dir, tiny_mqar_config(), big).configs.front();
  const auto task = bla::tasks::make_task(*one.data, one.run.seed);
  const auto estimate =
      bla::train::estimate_training_memory(one, bla::train::model_vocabulary(one, *task), task->seq_len());
  const double available = bla::train::memory_limit_bytes(one, bla::train::resolve_device(one.run.device));
  ASSERT_GT(available, 0.0);
  const int64_t fit = static_cast<int64_t>(available / estimate.total_bytes());
  if (fit < 1 || fit > 256) GTEST_SKIP() << fit << " members of 3 GiB fit this machine; the test needs 1 to 256";
  std::string seeds = "run.seed=[1";
  for (int64_t seed = 2; seed <= fit + 1; ++seed) seeds += ", " + std::to_string(seed);
  auto overrides = big;
  overrides.push_back(seeds + "]");
  auto members = members_of(dir, tiny_mqar_config(), overrides);
  std::vector<std::string> dirs;
  for (const auto& label : members.labels) dirs.push_back(dir / label);
  try {
    train_members(members, dirs);
    FAIL() << "expected DoesNotFitError";
  } catch (const bla::train::DoesNotFitError& error) {
    const std::string what = error.what();
    EXPECT_EQ(what.rfind("an ensemble of " + std::to_string(fit + 1) + " members needs at least ", 0), 0u) << what;
    EXPECT_NE(what.find("; at most " + std::to_string(fit) + " members fit: list fewer values"), std::string::npos)
        << what;
  }
  EXPECT_FALSE(bla::util::path_exists(dirs.front()));  // refused before anything was written
}

TEST(EnsembleConfig, AnEnsembleWhoseOneMemberCannotFitSaysToShrinkTheModel) {
  TempDir dir;
  // About 400 GB per member: more than any machine's memory this runs on.
  auto members = members_of(dir, tiny_mqar_config(),
                            {"model.d_model=16384", "model.layers=8", "model.heads=128", "run.seed=[1, 2]"});
  try {
    train_members(members, {dir / "a", dir / "b"});
    FAIL() << "expected DoesNotFitError";
  } catch (const bla::train::DoesNotFitError& error) {
    const std::string what = error.what();
    EXPECT_EQ(what.rfind("an ensemble of 2 members needs at least ", 0), 0u) << what;
    EXPECT_NE(what.find(" MiB; not one member fits: make the model or the batch smaller"), std::string::npos) << what;
  }
}

TEST(EnsembleConfig, RunMemoryLimitSizesTheEnsembleAndTheSizeItNamesTrains) {
  TempDir dir;
  const std::vector<std::string> limit = {"run.memory_limit_gb=0.004", "train.steps=2", "train.checkpoint_every=0"};
  auto overrides = limit;
  overrides.push_back("run.seed=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]");
  auto members = members_of(dir, tiny_mqar_config(), overrides);
  std::vector<std::string> dirs;
  for (const auto& label : members.labels) dirs.push_back(dir / label);
  int64_t fit = 0;
  try {
    train_members(members, dirs);
    FAIL() << "expected DoesNotFitError";
  } catch (const bla::train::DoesNotFitError& error) {
    const std::string what = error.what();
    const auto at = what.find("run.memory_limit_gb offers 4 MiB; at most ");
    ASSERT_NE(at, std::string::npos) << what;
    fit = std::stoll(what.substr(at + std::string("run.memory_limit_gb offers 4 MiB; at most ").size()));
  }
  ASSERT_GT(fit, 1);
  ASSERT_LT(fit, 16);
  // As many members as it named fit the same limit, and train.
  std::string seeds = "run.seed=[1";
  for (int64_t s = 2; s <= fit; ++s) seeds += ", " + std::to_string(s);
  overrides = limit;
  overrides.push_back(seeds + "]");
  auto fitting = members_of(dir, tiny_mqar_config(), overrides);
  dirs.clear();
  for (const auto& label : fitting.labels) dirs.push_back(dir / label);
  EXPECT_EQ(train_members(fitting, dirs).size(), static_cast<size_t>(fit));
}

TEST(EnsembleConfig, AConfigThatIsNoFileIsRefusedAsBeforeNotRead) {
  // Looking for listed member keys reads regular files only: /dev/zero gets load_config's message, at once.
  try {
    bla::config::load_member_configs("/dev/zero");
    FAIL() << "expected ConfigError";
  } catch (const bla::config::ConfigError& error) {
    EXPECT_EQ(std::string(error.what()), "/dev/zero: is not a regular file (a device, pipe or socket), not a config file");
  }
}
