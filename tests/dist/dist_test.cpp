// Distributed data-parallel training on the CPU with Gloo: real processes
// started by the built bla-launch running the built bla-train, compared with
// one-process runs of the same global batch. Plus the gradient bucketing,
// exercised by two ranks in two threads of this process.
#include "bla/config/config.h"
#include "bla/dist/grad_sync.h"
#include "bla/dist/process_group.h"
#include "bla/model/lm.h"
#include "bla/train/checkpoint.h"
#include "bla/train/trainer.h"
#include "bla/util/files.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

using bla::testing::TempDir;

namespace {

const std::string kLaunch = BLA_BINARY_DIR "/src/bla-launch";
const std::string kTrain = BLA_BINARY_DIR "/src/bla-train";

#if defined(BLA_HAVE_GLOO)
constexpr bool kHaveGloo = true;
#else
constexpr bool kHaveGloo = false;
#endif

#define SKIP_WITHOUT_GLOO() \
  if (!kHaveGloo) GTEST_SKIP() << "this build has no Gloo (BLA_HAVE_GLOO): no distributed training on the CPU"

using bla::testing::run_command;
using Outcome = bla::testing::CommandOutcome;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

std::string write_config(const TempDir& tmp) {
  std::string path = tmp / "tiny.yaml";
  std::ofstream(path) << bla::testing::tiny_mqar_config();
  return path;
}

std::string sets(const std::vector<std::string>& overrides) {
  std::string out;
  for (const auto& o : overrides) out += " --set " + o;
  return out;
}

// `ranks` processes through bla-launch.
Outcome launch(int ranks, const std::string& config, const std::string& dir, const std::vector<std::string>& overrides,
               const std::string& extra = "", const std::string& env = "") {
  return run_command((env.empty() ? "" : "env " + env + " ") + quoted(kLaunch) + " --nproc-per-node " + std::to_string(ranks) +
                         " --master-port 0 -- " + quoted(kTrain) + " " + quoted(config) + " --out " + quoted(dir) +
                         sets(overrides) + " " + extra,
                     60);
}

// One process, in this process (the reference).
void train_here(const std::string& config_path, const std::string& dir, const std::vector<std::string>& overrides,
                const std::string& resume = "") {
  bla::train::RunOptions options;
  options.run_dir = dir;
  options.resume = resume;
  options.quiet = true;
  bla::train::train(bla::config::load_config(config_path, overrides), options);
}

std::vector<nlohmann::json> train_lines(const std::string& dir) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    if (record["split"] == "train") lines.push_back(record);
  }
  return lines;
}

std::vector<torch::Tensor> checkpoint_parameters(const std::string& config_path, const std::string& file) {
  auto config = bla::config::load_config(config_path);
  bla::model::LanguageModel model(config.model, 64, 32);
  bla::train::load_checkpoint(file, *model, nullptr);
  return model->parameters();
}

void expect_same_losses(const std::string& dir_a, const std::string& dir_b, int64_t from_step, double tolerance) {
  auto a = train_lines(dir_a), b = train_lines(dir_b);
  std::map<int64_t, double> loss_b;
  for (const auto& l : b) loss_b[l["step"].get<int64_t>()] = l["loss"].get<double>();
  int compared = 0;
  for (const auto& l : a) {
    const int64_t step = l["step"].get<int64_t>();
    if (step < from_step) continue;
    ASSERT_TRUE(loss_b.count(step)) << "step " << step << " missing in " << dir_b;
    const double la = l["loss"].get<double>(), lb = loss_b[step];
    EXPECT_LE(std::abs(la - lb), tolerance * std::abs(lb)) << "step " << step << ": " << la << " vs " << lb;
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

// Parameters agree to `tolerance` relative to each tensor's largest entry.
// Not bitwise: one process takes the mean over the whole batch, two take the
// mean of their halves' means (another float32 summation order), and AdamW's
// normalisation magnifies the rounding in near-zero gradient components.
void expect_same_parameters(const std::string& config, const std::string& file_a, const std::string& file_b,
                            double tolerance) {
  auto a = checkpoint_parameters(config, file_a), b = checkpoint_parameters(config, file_b);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const double difference = (a[i].to(torch::kFloat64) - b[i].to(torch::kFloat64)).abs().max().item<double>();
    const double scale = b[i].abs().max().item<double>();
    EXPECT_LE(difference, tolerance * scale) << "parameter " << i << " (largest entry " << scale << ")";
  }
}

std::string step_file(const std::string& dir, int step) {
  char name[64];
  std::snprintf(name, sizeof(name), "/checkpoints/step-%08d.ckpt", step);
  return dir + name;
}

}  // namespace

TEST(Dist, TwoRanksMatchOneProcessWithTheSameGlobalBatch) {
  SKIP_WITHOUT_GLOO();
  TempDir tmp;
  const std::string config = write_config(tmp);
  // Log every step; small buckets so the model's gradients span several.
  const std::vector<std::string> overrides = {"train.log_every=1", "train.bucket_mb=0.01"};
  train_here(config, tmp / "one", overrides);
  auto two = launch(2, config, tmp / "two", overrides);
  ASSERT_EQ(two.status, 0) << two.output;

  expect_same_losses(tmp / "two", tmp / "one", 1, 1e-5);
  EXPECT_EQ(train_lines(tmp / "two").size(), 12u);
  expect_same_parameters(config, step_file(tmp / "two", 12), step_file(tmp / "one", 12), 1e-4);

  // Rank 0 alone logs and writes; each line is prefixed with its rank.
  EXPECT_NE(two.output.find("[rank 0] "), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("distributed: 2 ranks (gloo)"), std::string::npos) << two.output;
  EXPECT_EQ(two.output.find("[rank 1] ["), std::string::npos) << "rank 1 should be quiet:\n" << two.output;
  auto summary = nlohmann::json::parse(bla::util::read_file(tmp / "two/summary.json"));
  EXPECT_EQ(summary["distributed"]["world_size"], 2);
  EXPECT_GT(summary["distributed"]["buckets"].get<int>(), 1);
}

TEST(Dist, GradientAccumulationOverTwoRanksMatchesOneProcess) {
  SKIP_WITHOUT_GLOO();
  TempDir tmp;
  const std::string config = write_config(tmp);
  // 16 examples = 2 ranks x 2 micro-steps x 4; the reference takes 16 at once.
  auto two = launch(2, config, tmp / "two", {"train.log_every=1", "train.grad_accum=2", "train.steps=6"});
  ASSERT_EQ(two.status, 0) << two.output;
  train_here(config, tmp / "one", {"train.log_every=1", "train.steps=6"});
  expect_same_losses(tmp / "two", tmp / "one", 1, 1e-5);
  expect_same_parameters(config, step_file(tmp / "two", 6), step_file(tmp / "one", 6), 1e-4);
}

TEST(Dist, TwoRankRunResumesAsOneProcess) {
  SKIP_WITHOUT_GLOO();
  TempDir tmp;
  const std::string config = write_config(tmp);
  const std::vector<std::string> overrides = {"train.log_every=1"};
  auto two = launch(2, config, tmp / "two", overrides);
  ASSERT_EQ(two.status, 0) << two.output;
  // Continue from the 2-rank run's step-6 checkpoint with one process.
  bla::util::create_directories(tmp / "resumed/checkpoints");
  bla::util::write_file_atomically(step_file(tmp / "resumed", 6), bla::util::read_file(step_file(tmp / "two", 6)));
  train_here(config, tmp / "resumed", overrides, "auto");
  auto resumed = train_lines(tmp / "resumed");
  ASSERT_EQ(resumed.size(), 6u);
  EXPECT_EQ(resumed.front()["step"], 7);
  expect_same_losses(tmp / "resumed", tmp / "two", 7, 1e-5);
  expect_same_parameters(config, step_file(tmp / "resumed", 12), step_file(tmp / "two", 12), 1e-5);

  // And the other way: a one-process checkpoint continued by two ranks.
  auto back = launch(2, config, tmp / "resumed", {"train.log_every=1", "train.steps=14"}, "--resume auto");
  ASSERT_EQ(back.status, 0) << back.output;
  EXPECT_NE(back.output.find("resumed from"), std::string::npos) << back.output;
  EXPECT_TRUE(bla::util::path_exists(step_file(tmp / "resumed", 14)));
}

TEST(Dist, ADeadRankStopsTheRunAndIsNamed) {
  SKIP_WITHOUT_GLOO();
  TempDir tmp;
  const std::string config = write_config(tmp);
  // Test hook: rank 1 SIGKILLs itself in its third step.
  auto run = launch(2, config, tmp / "run", {"run.dist_timeout_s=20"}, "", "BLA_TEST_DIE_AT_STEP=1:3");
  EXPECT_NE(run.status, 0) << run.output;
  EXPECT_NE(run.status, -1) << "bla-launch did not exit by itself within the limit:\n" << run.output;
  EXPECT_LT(run.seconds, 40) << run.output;
  EXPECT_NE(run.output.find("bla-launch: rank 1 (pid "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("was killed by signal 9"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("bla-launch: failed: rank 1 failed first"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("[rank 1] bla-train: BLA_TEST_DIE_AT_STEP: rank 1 kills itself in step 3"),
            std::string::npos)
      << run.output;
  EXPECT_FALSE(bla::util::path_exists(step_file(tmp / "run", 3))) << "no checkpoint after a rank died";
}

TEST(Dist, BatchNotDivisibleByRanksIsAConfigError) {
  SKIP_WITHOUT_GLOO();
  TempDir tmp;
  const std::string config = write_config(tmp);
  auto run = launch(2, config, tmp / "run", {"train.batch_size=10", "train.grad_accum=2"});
  EXPECT_EQ(run.status, 2) << run.output;
  EXPECT_NE(run.output.find("config error: train.batch_size (10) must be divisible by WORLD_SIZE (2) x "
                            "train.grad_accum (2) = 4"),
            std::string::npos)
      << run.output;
}

TEST(DistLaunch, ExitStatusAndPrefixes) {
  // No Gloo needed: the launcher alone.
  auto ok = run_command(quoted(kLaunch) + " --nproc-per-node 3 --master-port 0 -- sh -c "
                        "'echo \"rank $RANK of $WORLD_SIZE local $LOCAL_RANK/$LOCAL_WORLD_SIZE at $MASTER_ADDR\"; "
                        "printf partial >&2'",
                        20);
  EXPECT_EQ(ok.status, 0) << ok.output;
  for (int r = 0; r < 3; ++r) {
    const std::string rank = std::to_string(r);
    EXPECT_NE(ok.output.find("[rank " + rank + "] rank " + rank + " of 3 local " + rank + "/3 at 127.0.0.1\n"),
              std::string::npos)
        << ok.output;
    EXPECT_NE(ok.output.find("[rank " + rank + "] partial\n"), std::string::npos) << ok.output;
  }
  // Rank 2 of 4 on node 1 fails: the others (sleeping) are stopped.
  auto bad = run_command(quoted(kLaunch) + " --nproc-per-node 2 --nnodes 2 --node-rank 1 -- sh -c "
                         "'if [ $RANK = 2 ]; then exit 7; fi; sleep 30'",
                         20);
  EXPECT_EQ(bad.status, 7) << bad.output;
  EXPECT_LT(bad.seconds, 15) << bad.output;
  EXPECT_NE(bad.output.find("bla-launch: rank 2 (pid "), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("exited with status 7; stopping the other ranks"), std::string::npos) << bad.output;

  auto usage = run_command(quoted(kLaunch) + " -- true", 10);
  EXPECT_EQ(usage.status, 2);
  EXPECT_NE(usage.output.find("bla-launch: --nproc-per-node is required"), std::string::npos) << usage.output;
}

TEST(DistLaunch, ForwardsSigterm) {
  // bla-launch in the background, SIGTERM to it: the ranks get it too, and
  // bla-launch exits with 128 + 15.
  TempDir tmp;
  // Each rank says it is ready (its trap set) with a file; then the TERM.
  std::ofstream(tmp / "script.sh")
      << "cd " << quoted(tmp.str()) << "\n"
      << quoted(kLaunch)
      << " --nproc-per-node 2 -- sh -c 'trap \"echo got-term; exit 3\" TERM; touch ready$RANK; sleep 30 & wait' &\n"
         "pid=$!\n"
         "for i in $(seq 100); do [ -e ready0 ] && [ -e ready1 ] && break; sleep 0.1; done\n"
         "kill -TERM $pid\nwait $pid\necho launcher=$?\n";
  auto out = run_command("sh " + quoted(tmp / "script.sh"), 20);
  EXPECT_NE(out.output.find("launcher=143"), std::string::npos) << out.output;
  EXPECT_NE(out.output.find("[rank 0] got-term"), std::string::npos) << out.output;
  EXPECT_NE(out.output.find("[rank 1] got-term"), std::string::npos) << out.output;
  EXPECT_LT(out.seconds, 10) << out.output;
}

TEST(DistContext, ReadsTheTorchrunEnvironment) {
  struct Env {
    std::vector<std::string> names;
    void set(const char* name, const char* value) {
      ::setenv(name, value, 1);
      names.push_back(name);
    }
    ~Env() {
      for (const auto& n : names) ::unsetenv(n.c_str());
    }
  };
  {
    auto single = bla::dist::DistContext::from_environment();
    EXPECT_FALSE(single.active());
    EXPECT_EQ(single.world_size, 1);
  }
  {
    Env env;
    env.set("RANK", "3");
    env.set("WORLD_SIZE", "4");
    env.set("LOCAL_RANK", "1");
    env.set("LOCAL_WORLD_SIZE", "2");
    env.set("MASTER_ADDR", "node7");
    env.set("MASTER_PORT", "29400");
    auto c = bla::dist::DistContext::from_environment();
    EXPECT_TRUE(c.active());
    EXPECT_FALSE(c.is_main());
    EXPECT_EQ(c.rank, 3);
    EXPECT_EQ(c.world_size, 4);
    EXPECT_EQ(c.local_rank, 1);
    EXPECT_EQ(c.local_world_size, 2);
    EXPECT_EQ(c.master_addr, "node7");
    EXPECT_EQ(c.master_port, 29400);
    EXPECT_FALSE(c.agent_store);
  }
  auto error_of = [] {
    try {
      bla::dist::DistContext::from_environment();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  {
    Env env;
    env.set("RANK", "0");
    EXPECT_EQ(error_of(),
              "distributed: RANK is set but WORLD_SIZE is not; set both (torchrun and bla-launch do) or neither for "
              "one process");
  }
  {
    Env env;
    env.set("RANK", "2");
    env.set("WORLD_SIZE", "2");
    EXPECT_EQ(error_of(), "distributed: environment variable RANK='2' is not an integer in [0, 1]; fix or unset it");
  }
  {
    Env env;
    env.set("RANK", "0");
    env.set("WORLD_SIZE", "2");
    EXPECT_EQ(error_of(),
              "distributed: WORLD_SIZE is 2 but MASTER_ADDR or MASTER_PORT is not set; set both to rank 0's host and "
              "a free port (torchrun and bla-launch do)");
  }
}

#if defined(BLA_HAVE_GLOO)
namespace {
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}
}  // namespace

// Two ranks as two threads of this process, each with its own Gloo group:
// the hooks, buckets and accumulation against the plain average.
TEST(DistGradSync, AveragesGradientsOverRanksWithAccumulationAndUnusedParameters) {
  const int port = free_port();
  // Three parameters; the last is used only by rank 1, and only in the first
  // micro-step; a tiny bucket size puts them in separate buckets.
  torch::manual_seed(0);
  const std::vector<torch::Tensor> initial = {torch::randn({5, 3}, torch::kFloat64), torch::randn({3}, torch::kFloat64),
                                              torch::randn({4}, torch::kFloat64)};
  auto make_parameters = [&initial] {
    std::vector<torch::Tensor> p;
    for (const auto& t : initial) p.push_back(t.clone().requires_grad_());
    return p;
  };
  auto loss_of = [](const std::vector<torch::Tensor>& p, int rank, int micro) {
    auto x = torch::full({2, 5}, 0.5 + rank + 0.25 * micro, torch::kFloat64);
    auto loss = (torch::tanh(x.matmul(p[0])) * p[1]).sum();
    if (rank == 1 && micro == 0) loss = loss + (p[2] * p[2]).sum() * 3.0;
    return loss;
  };
  const int micro_steps = 2;
  std::vector<std::vector<torch::Tensor>> synced(2);
  std::vector<std::vector<std::vector<int64_t>>> layouts(2);
  std::vector<std::string> errors(2);
  auto rank_main = [&](int rank) {
    try {
      bla::dist::DistContext c;
      c.rank = rank;
      c.world_size = 2;
      c.local_rank = rank;
      c.local_world_size = 2;
      c.master_port = port;
      bla::dist::ProcessGroup group(c, torch::kCPU, std::chrono::seconds(20));
      auto p = make_parameters();
      bla::dist::GradSync sync(p, group, 16.0 / (1 << 20));  // 16 bytes: one parameter per bucket
      layouts[rank] = sync.bucket_layout();
      for (int step = 0; step < 2; ++step) {  // twice: the state resets between steps
        for (auto& t : p) t.mutable_grad() = torch::Tensor();
        for (int micro = 0; micro < micro_steps; ++micro) {
          sync.begin_micro_step(micro == micro_steps - 1);
          loss_of(p, rank, micro).backward();
        }
        sync.finish();
      }
      for (auto& t : p) synced[rank].push_back(t.grad().defined() ? t.grad().clone() : torch::zeros_like(t));
    } catch (const std::exception& e) {
      errors[rank] = e.what();
    }
  };
  std::thread r0(rank_main, 0), r1(rank_main, 1);
  r0.join();
  r1.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  EXPECT_EQ(layouts[0], (std::vector<std::vector<int64_t>>{{2}, {1}, {0}}));

  // The reference: the plain average over ranks of the accumulated gradients.
  auto p = make_parameters();
  std::vector<torch::Tensor> expected;
  for (auto& t : p) expected.push_back(torch::zeros_like(t));
  for (int rank = 0; rank < 2; ++rank) {
    for (auto& t : p) t.mutable_grad() = torch::Tensor();
    for (int micro = 0; micro < micro_steps; ++micro) loss_of(p, rank, micro).backward();
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i].grad().defined()) expected[i] += p[i].grad() / 2.0;
    }
  }
  ASSERT_GT(expected[2].abs().sum().item<double>(), 0.0);
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_EQ(synced[rank].size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_TRUE(torch::allclose(synced[rank][i], expected[i], 1e-12, 1e-12))
          << "rank " << rank << " parameter " << i << "\n" << synced[rank][i] << "\n" << expected[i];
    }
  }
}
#endif
