// bla-sweep: the sweep file's grid (groups, zip, names), its errors, and the
// built program running points (a stand-in bla-train script for skip, failure
// and the CSV; the real bla-train for resume and a point's config error).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "bla/config/config.h"
#include "bla/config/section.h"
#include "bla/sweep/grid.h"
#include "bla/sweep/point_runner.h"
#include "bla/sweep/selection.h"
#include "bla/sweep/sweep_file.h"
#include "bla/sweep/waves.h"
#include "bla/train/task_and_model.h"
#include "bla/util/exit_codes.h"
#include "bla/util/files.h"
#include "support/run_helpers.h"

using bla::testing::TempDir;

namespace {

const std::string kSweep = BLA_BINARY_DIR "/src/bla-sweep";
const std::string kTrain = BLA_BINARY_DIR "/src/bla-train";

std::vector<std::string> names_of(const bla::sweep::Grid& grid) {
  std::vector<std::string> names;
  for (const auto& p : grid.points) names.push_back(p.name);
  return names;
}

std::string parse_error(const std::string& yaml) {
  try {
    bla::sweep::expand(bla::sweep::parse_sweep(yaml, "sweeps/s.yaml"));
  } catch (const bla::config::ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

using bla::testing::run_command;
using Outcome = bla::testing::CommandOutcome;

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(bla::util::read_file(path));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields;
    std::string field;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') {
        quoted = !quoted;
      } else if (c == ',' && !quoted) {
        fields.push_back(field);
        field.clear();
      } else {
        field += c;
      }
    }
    fields.push_back(field);
    rows.push_back(fields);
  }
  return rows;
}

std::string column(const std::vector<std::vector<std::string>>& csv, size_t row, const std::string& name) {
  for (size_t i = 0; i < csv[0].size(); ++i) {
    if (csv[0][i] == name) return csv.at(row).at(i);
  }
  return "(no column " + name + ")";
}

// A stand-in for bla-train: records its arguments in <sweep>/calls.txt, fails
// with a config error for train.lr=bad and exit 1 for train.lr=crash, sleeps
// 30 s for train.lr=slow, 2 s before its summary for train.lr=nap..., else
// writes a summary.json into --out at once.
std::string write_fake_train(const TempDir& tmp) {
  const std::string path = tmp / "fake-train";
  std::ofstream(path) << R"SH(#!/bin/sh
out=""; prev=""
for a in "$@"; do [ "$prev" = "--out" ] && out=$a; prev=$a; done
echo "$*" >> "$(dirname "$(dirname "$out")")/calls.txt"
case "$*" in
  *train.lr=bad*) echo "bla-train: config error: --set train.lr=bad: expected a number, got 'bad'"; exit 2;;
  *train.lr=crash*) echo "step 1"; echo "step 2"; echo "bla-train: error: out of memory"; exit 1;;
  *train.lr=slow*) exec sleep 30;;
  *train.lr=nap*) sleep 2;;
esac
mkdir -p "$out"
printf '{"task":"mqar","steps":12,"test":{"accuracy":0.75,"loss":1.5,"examples":64},"parameters":321,"state":{"per_layer":[{"state_numel":100},{"state_numel":200}],"total_numel":300,"context":32},"wall_time_s":2.5,"device":"cpu"}\n' > "$out/summary.json"
)SH";
  ::chmod(path.c_str(), 0755);
  return path;
}

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// A script at `path` that runs its arguments, waits until `flag` is a
// non-empty file (at most 10 s), sends them SIG`signal` and exits with their
// status. With `whole_group` they run in a process group of their own and the
// signal goes to all of it, as a terminal's Ctrl-C does.
std::string write_signal_script(const std::string& path, const std::string& flag, const std::string& signal,
                                bool whole_group) {
  write_file(path, std::string("#!/bin/sh\n") + (whole_group ? "setsid " : "") + "\"$@\" & p=$!\nn=0\n" +
                       "while [ ! -s " + flag + " ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done\n" +
                       "kill -" + signal + " " + (whole_group ? "-" : "") + "$p\nwait $p\n");
  ::chmod(path.c_str(), 0755);
  return path;
}

int count_lines(const std::string& path) {
  if (!bla::util::path_exists(path)) return 0;
  std::istringstream in(bla::util::read_file(path));
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

}  // namespace

TEST(SweepGrid, GroupsAndZipExpandToTheUnionOfTheirProducts) {
  auto spec = bla::sweep::parse_sweep(R"(
base: ../mqar_bla.yaml
set: {train.steps: 100, train.lr: 1e-3}
grid: {train.lr: [1e-3, 3e-3]}
groups:
  - label: bla
    set: {model.mixer: bla, model.mixers.bla.window: 64}
    grid: {model.mixers.bla.slots: [4, 8]}
  - label: hybrid
    set: {model.mixer: [swa, bla]}
    zip:
      model.mixers.swa.window: [8, 16]
      model.mixers.bla.window: [64, 128]
  - set: {model.mixer: attention}
)", "configs/sweeps/s.yaml");
  EXPECT_EQ(spec.base_config, "configs/sweeps/../mqar_bla.yaml");
  auto grid = bla::sweep::expand(spec);
  EXPECT_EQ(names_of(grid), (std::vector<std::string>{
                                "bla_slots-4_lr-1e-3", "bla_slots-4_lr-3e-3", "bla_slots-8_lr-1e-3",
                                "bla_slots-8_lr-3e-3", "hybrid_swa.window-8_bla.window-64_lr-1e-3",
                                "hybrid_swa.window-8_bla.window-64_lr-3e-3",
                                "hybrid_swa.window-16_bla.window-128_lr-1e-3",
                                "hybrid_swa.window-16_bla.window-128_lr-3e-3", "attention_lr-1e-3",
                                "attention_lr-3e-3"}));
  EXPECT_EQ(grid.columns, (std::vector<std::string>{"model.mixer", "model.mixers.bla.window", "model.mixers.bla.slots",
                                                    "train.lr", "model.mixers.swa.window"}));
  const auto& hybrid = grid.points[6];
  EXPECT_EQ(hybrid.group, "hybrid");
  EXPECT_EQ(hybrid.value("model.mixer"), "[swa, bla]");
  EXPECT_EQ(hybrid.value("model.mixers.swa.window"), "16");
  EXPECT_EQ(hybrid.value("model.mixers.bla.window"), "128");  // zipped with 16
  EXPECT_EQ(hybrid.value("train.lr"), "1e-3");                 // the axis overrides the sweep's set
  EXPECT_EQ(hybrid.value("train.steps"), "100");
  EXPECT_EQ(grid.points[8].group, "attention");  // an unlabelled group is named after its mixer
}

TEST(SweepGrid, AGroupsAxisOverTheFilesKeysReplacesItInPlace) {
  auto spec = bla::sweep::parse_sweep(R"(
base: ../mqar_bla.yaml
grid: {train.lr: [1e-3, 3e-3], run.seed: [1, 2]}
groups:
  - label: bla
    grid: {model.mixers.bla.slots: [4]}
  - label: gsa
    grid: {train.lr: [3e-2], model.mixers.gsa.slots: [8]}
)",
                                      "configs/sweeps/s.yaml");
  const auto grid = bla::sweep::expand(spec);
  // gsa's rates replace the file's; names keep the group's own axes first, then the file's in their order.
  EXPECT_EQ(names_of(grid), (std::vector<std::string>{"bla_slots-4_lr-1e-3_seed-1", "bla_slots-4_lr-1e-3_seed-2",
                                                      "bla_slots-4_lr-3e-3_seed-1", "bla_slots-4_lr-3e-3_seed-2",
                                                      "gsa_slots-8_lr-3e-2_seed-1", "gsa_slots-8_lr-3e-2_seed-2"}));
  EXPECT_EQ(grid.points[5].value("train.lr"), "3e-2");
}

TEST(SweepGrid, OnlyKeepsTheNamedGroupsAndRejectsAnUnknownLabel) {
  auto spec = bla::sweep::parse_sweep(R"(
base: ../mqar_bla.yaml
groups:
  - label: bla
    grid: {model.mixers.bla.slots: [4, 8]}
  - label: gla
    set: {model.mixer: gla}
  - set: {model.mixer: attention}
)", "configs/sweeps/s.yaml");
  const auto grid = bla::sweep::expand(spec);
  const auto kept = bla::sweep::only_groups(grid, {"attention", "bla"}, "s.yaml");
  EXPECT_EQ(names_of(kept), (std::vector<std::string>{"bla_slots-4", "bla_slots-8", "attention"}));
  EXPECT_EQ(kept.columns, grid.columns);
  try {
    bla::sweep::only_groups(grid, {"mamba2"}, "s.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const bla::config::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "s.yaml: --only: no group is labelled 'mamba2'; the groups are: bla, gla, attention");
  }
}

TEST(SweepGrid, NamesAreStableWhenAnAxisGrowsAndUniqueAcrossTheSweep) {
  const std::string head = "base: b.yaml\ngroups:\n  - {label: swa, grid: {model.mixers.swa.window: ";
  auto small = bla::sweep::expand(bla::sweep::parse_sweep(head + "[8, 16]}}\n", "s.yaml"));
  auto large = bla::sweep::expand(bla::sweep::parse_sweep(head + "[4, 8, 16, 32]}}\n", "s.yaml"));
  EXPECT_EQ(names_of(small), (std::vector<std::string>{"swa_window-8", "swa_window-16"}));
  EXPECT_EQ(names_of(large), (std::vector<std::string>{"swa_window-4", "swa_window-8", "swa_window-16", "swa_window-32"}));
  EXPECT_EQ(parse_error("base: b.yaml\ngroups:\n  - {label: a, set: {train.lr: 1e-3}}\n  - {label: a, set: {train.lr: 3e-3}}\n"),
            "sweeps/s.yaml: two points are named 'a' (groups 'a' and 'a'); give the groups different labels");
  EXPECT_EQ(bla::sweep::name_part("[swa, {type: bla, slots: 16}]"), "swa+type-bla+slots-16");
}

// Every sweep file in configs/sweeps expands, and every point's overrides
// make a config bla-train accepts and a model it builds (a mistyped mixer key
// in a group fails here, not on the GPU). Points that differ only in train.*
// and run.* keys build one model.
TEST(SweepFile, EveryShippedSweepFileExpandsIntoConfigsBlaTrainAccepts) {
  const std::string dir = std::string(BLA_SOURCE_DIR) + "/configs/sweeps";
  int files = 0, models = 0;
  for (const auto& name : bla::util::list_directory(dir)) {
    if (name.size() <= 5 || name.substr(name.size() - 5) != ".yaml") continue;
    ++files;
    const auto spec = bla::sweep::load_sweep(bla::util::join_path(dir, name));
    const auto grid = bla::sweep::expand(spec);
    ASSERT_FALSE(grid.points.empty()) << name;
    if (spec.select) EXPECT_NO_THROW(bla::sweep::stages_of(*spec.select, grid, spec.file)) << name;
    std::set<std::string> built;
    for (const auto& point : grid.points) {
      std::vector<std::string> overrides;
      std::string model_keys;
      for (const auto& o : point.overrides) {
        overrides.push_back(o.key + "=" + o.value);
        if (o.key.rfind("train.", 0) != 0 && o.key.rfind("run.", 0) != 0) model_keys += overrides.back() + ";";
      }
      try {
        const auto config = bla::config::load_config(spec.base_config, overrides);
        if (!built.insert(model_keys).second) continue;
        bla::train::build_model(config, 256, 64, /*data_read=*/false);
        ++models;
      } catch (const bla::config::ConfigError& e) {
        ADD_FAILURE() << name << ", point " << point.name << ": " << e.what();
      }
    }
  }
  EXPECT_GE(files, 10);
  EXPECT_GE(models, 100);
}

TEST(SweepFile, ErrorsNameTheFileLineKeyAndFix) {
  EXPECT_EQ(parse_error("base: b.yaml\ngrdi: {train.lr: [1e-3]}\n"),
            "sweeps/s.yaml, line 2: unknown key 'grdi' (did you mean 'grid'?)");
  EXPECT_EQ(parse_error("base: b.yaml\ngroups:\n  - label: a\n    zipp: {train.lr: [1e-3]}\n"),
            "sweeps/s.yaml, line 4: unknown key 'groups[0].zipp' (did you mean 'groups[0].zip'?)");
  EXPECT_EQ(parse_error("grid: {train.lr: [1e-3]}\n"),
            "sweeps/s.yaml, line 1: base: is required: the config every point starts from, relative to the sweep file, "
            "e.g. base: ../mqar_attention.yaml");
  EXPECT_EQ(parse_error("base: b.yaml\ngrid: {train.lr: 1e-3}\n"),
            "sweeps/s.yaml, line 2: grid.train.lr: expected a non-empty list of values, e.g. [1e-3, 3e-3] "
            "(a single value belongs in 'set')");
  EXPECT_EQ(parse_error("base: b.yaml\nzip: {model.mixers.gsa.slots: [8, 16], train.lr: [1e-3]}\n"),
            "sweeps/s.yaml, line 2: zip: the lists have different lengths (model.mixers.gsa.slots: 2, train.lr: 1); "
            "zipped keys take their i-th values together, so give them lists of one length");
  EXPECT_EQ(parse_error("base: b.yaml\nzip: {train.lr: [1e-3], run.seed: [1]}\ngroups:\n  - label: a\n    grid: "
                        "{train.lr: [3e-3]}\n"),
            "sweeps/s.yaml, line 5: 'train.lr' is already an axis (sweeps/s.yaml, line 2) of group 'a'; "
            "sweep a key once per group");
  EXPECT_EQ(parse_error("base: b.yaml\nset: {train lr: 1}\n"),
            "sweeps/s.yaml, line 2: set: 'train lr' is not a config key; write the dotted path bla-train --set "
            "takes, e.g. train.lr");
}

TEST(SweepRun, AFailingPointIsRecordedAndTheOthersFinishIntoTheCsv) {
  TempDir tmp;
  const std::string fake = write_fake_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string sweep = write_file(tmp / "s.yaml", R"(base: base.yaml
grid: {train.lr: [1e-3, bad, crash]}
groups:
  - {label: bla, set: {model.mixer: bla}, grid: {model.mixers.bla.slots: [4, 8]}}
)");
  const std::string out = tmp / "out";
  auto run = run_command(kSweep + " " + sweep + " --out " + out + " --jobs 2 --ensemble off --bla-train " + fake, 60);
  EXPECT_EQ(run.status, 1) << run.output;  // some point failed
  EXPECT_NE(run.output.find("FAILED bla_slots-4_lr-crash (failed, exit code 1)"), std::string::npos) << run.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 6);

  auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 7u);
  EXPECT_EQ(csv[0], (std::vector<std::string>{"name", "group", "status", "action", "exit_code", "model.mixer",
                                              "model.mixers.bla.slots", "train.lr", "task", "steps", "test_accuracy",
                                              "test_examples", "test_loss", "parameters", "state_total",
                                              "state_per_layer", "context", "wall_time_s", "device", "run_dir",
                                              "error"}));
  EXPECT_EQ(csv[1], (std::vector<std::string>{"bla_slots-4_lr-1e-3", "bla", "done", "ran", "0", "bla", "4", "1e-3",
                                              "mqar", "12", "0.75", "64", "1.5", "321", "300", "100;200", "32", "2.5",
                                              "cpu", out + "/runs/bla_slots-4_lr-1e-3", ""}));
  EXPECT_EQ(column(csv, 2, "status"), "config_error");
  EXPECT_EQ(column(csv, 2, "exit_code"), "2");
  EXPECT_EQ(column(csv, 2, "error"), "bla-train: config error: --set train.lr=bad: expected a number, got 'bad'");
  EXPECT_EQ(column(csv, 3, "status"), "failed");
  EXPECT_EQ(column(csv, 3, "error"), "step 1 | step 2 | bla-train: error: out of memory");
  EXPECT_EQ(column(csv, 4, "status"), "done");
  EXPECT_EQ(column(csv, 6, "name"), "bla_slots-8_lr-crash");
}

TEST(SweepRun, FinishedPointsAreSkipped) {
  TempDir tmp;
  const std::string fake = write_fake_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string head = "base: base.yaml\ngroups:\n  - {label: swa, grid: {model.mixers.swa.window: ";
  const std::string out = tmp / "out";
  auto first = run_command(kSweep + " " + write_file(tmp / "s.yaml", head + "[8, 16]}}\n") + " --out " + out +
                               " --bla-train " + fake, 60);
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 2);
  // A third window: only the new point runs.
  auto second = run_command(kSweep + " " + write_file(tmp / "s.yaml", head + "[8, 16, 32]}}\n") + " --out " + out +
                                " --bla-train " + fake, 60);
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_NE(second.output.find("3 points: 2 done already (skipped), 0 to resume, 1 new"), std::string::npos)
      << second.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 3);
  auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 4u);
  EXPECT_EQ(column(csv, 1, "action"), "skipped");
  EXPECT_EQ(column(csv, 1, "status"), "done");
  EXPECT_EQ(column(csv, 3, "action"), "ran");
  auto dry = run_command(kSweep + " " + tmp / "s.yaml" + " --out " + out + " --dry-run --bla-train " + fake, 60);
  EXPECT_NE(dry.output.find("swa_window-32  [done]"), std::string::npos) << dry.output;

  // Other settings for the same names: the old runs are neither skipped nor resumed.
  auto changed = run_command(kSweep + " " + write_file(tmp / "s.yaml", "set: {train.steps: 5}\n" + head + "[8]}}\n") +
                                 " --out " + out + " --bla-train " + fake, 60);
  EXPECT_EQ(changed.status, 1) << changed.output;
  EXPECT_NE(changed.output.find("not running swa_window-8: " + out + "/runs/swa_window-8 holds a run of other settings"),
            std::string::npos) << changed.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 3);
  EXPECT_EQ(column(read_csv(out + "/results.csv"), 1, "status"), "stale");
}

// A stop signal (Ctrl-C, or `timeout` at its limit) while points are still
// queued: the running point is stopped, nothing new starts, the CSV records
// the queued points as pending and bla-sweep exits 130 (it used to wait for
// children it had none of and fail with "waitpid failed: No child processes").
TEST(SweepRun, AStopSignalWithPointsStillQueuedEndsInterruptedWithTheCsv) {
  TempDir tmp;
  const std::string fake = write_fake_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string sweep = write_file(tmp / "s.yaml",
                                       "base: base.yaml\ngrid: {train.lr: [slow]}\n"
                                       "groups:\n  - {label: bla, grid: {model.mixers.bla.slots: [4, 8, 16]}}\n");
  const std::string out = tmp / "out";
  // SIGTERM to bla-sweep alone once the first point has started.
  const std::string stopper = write_signal_script(tmp / "stop", out + "/calls.txt", "TERM", false);
  auto run = run_command(stopper + " " + kSweep + " " + sweep + " --out " + out + " --jobs 1 --bla-train " + fake, 60);
  EXPECT_EQ(run.status, 130) << run.output;
  EXPECT_LT(run.seconds, 20) << run.output;  // the sleeping point was stopped, not waited for
  EXPECT_NE(run.output.find("bla-sweep: interrupted in"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("waitpid failed"), std::string::npos) << run.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 1);
  auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 4u);
  EXPECT_EQ(column(csv, 1, "status"), "killed");
  EXPECT_EQ(column(csv, 2, "status"), "pending");
  EXPECT_EQ(column(csv, 3, "status"), "pending");
}

// The real bla-train: a point cut after its step-6 checkpoint resumes there
// and ends as the uninterrupted run did; a point with a bad key reports it.
TEST(SweepRun, AnInterruptedPointResumesAndAConfigErrorIsReported) {
  TempDir tmp;
  write_file(tmp / "tiny.yaml", bla::testing::tiny_mqar_config("bla", "  mixers: {bla: {window: 32, slots: 4}}\n"));
  const std::string sweep = write_file(tmp / "s.yaml", R"(base: tiny.yaml
groups:
  - {label: bla, grid: {model.mixers.bla.slots: [4]}}
  - {label: typo, set: {model.mixers.bla.slotz: 4}}
)");
  const std::string out = tmp / "out";
  const std::string command = kSweep + " " + sweep + " --out " + out + " --bla-train " + kTrain;
  auto first = run_command(command, 300);
  EXPECT_EQ(first.status, 1) << first.output;
  auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(column(csv, 1, "status"), "done");
  const std::string accuracy = column(csv, 1, "test_accuracy");
  EXPECT_EQ(column(csv, 2, "status"), "config_error");
  EXPECT_NE(column(csv, 2, "error").find("unknown key 'model.mixers.bla.slotz' (did you mean 'model.mixers.bla.slots'?)"),
            std::string::npos) << column(csv, 2, "error");

  // Interrupt it after step 6: no summary, no later checkpoints.
  const std::string run_dir = out + "/runs/bla_slots-4";
  ASSERT_TRUE(bla::util::remove_file(run_dir + "/summary.json"));
  for (const char* step : {"00000009", "00000012"}) {
    ASSERT_TRUE(bla::util::remove_file(run_dir + "/checkpoints/step-" + std::string(step) + ".ckpt"));
  }
  auto second = run_command(command, 300);
  EXPECT_EQ(second.status, 1) << second.output;
  EXPECT_NE(second.output.find("start bla_slots-4 (resuming)"), std::string::npos) << second.output;
  EXPECT_NE(bla::util::read_file(run_dir + "/train.log").find("at step 6"), std::string::npos);
  csv = read_csv(out + "/results.csv");
  EXPECT_EQ(column(csv, 1, "status"), "done");
  EXPECT_EQ(column(csv, 1, "action"), "resumed");
  EXPECT_EQ(column(csv, 1, "test_accuracy"), accuracy);  // CPU resume is exact
}

TEST(SweepEnsembles, PointsThatDifferOnlyInMemberKeysShareAProcess) {
  auto spec = bla::sweep::parse_sweep(R"(base: b.yaml
grid: {train.lr: [1e-3, 3e-3], run.seed: [1, 2]}
groups:
  - {label: bla, set: {model.mixer: bla}, grid: {model.mixers.bla.slots: [4, 8]}}
  - {label: swa, set: {model.mixer: swa}}
)", "sweeps/s.yaml");
  auto grid = bla::sweep::expand(spec);
  ASSERT_EQ(grid.points.size(), 12u);
  std::vector<size_t> queue(grid.points.size());
  for (size_t i = 0; i < queue.size(); ++i) queue[i] = i;
  std::vector<bool> fresh(queue.size(), false);
  auto sizes = [](const std::vector<std::vector<size_t>>& processes) {
    std::vector<size_t> out;
    for (const auto& p : processes) out.push_back(p.size());
    return out;
  };
  // Per BLA slot count one ensemble of lr x seed, and one for SWA.
  auto plan = bla::sweep::plan_processes(grid, queue, fresh, 16);
  EXPECT_EQ(sizes(plan), (std::vector<size_t>{4, 4, 4}));
  EXPECT_EQ(sizes(bla::sweep::plan_processes(grid, queue, fresh, 3)), (std::vector<size_t>{3, 1, 3, 1, 3, 1}));
  EXPECT_EQ(sizes(bla::sweep::plan_processes(grid, queue, fresh, 1)), std::vector<size_t>(12, 1));
  // A point with a checkpoint to resume does not share a process with fresh ones.
  auto mixed = fresh;
  mixed[0] = true;
  EXPECT_EQ(sizes(bla::sweep::plan_processes(grid, queue, mixed, 16)), (std::vector<size_t>{1, 3, 4, 4}));
  // Processes that resume run before new ones, whatever their grid order:
  // here the last ensemble (SWA's) and one point of the first.
  auto late = fresh;
  for (size_t i : plan[2]) late[i] = true;
  late[plan[0][3]] = true;
  const auto resumed_first = bla::sweep::plan_processes(grid, queue, late, 16);
  ASSERT_EQ(sizes(resumed_first), (std::vector<size_t>{1, 4, 3, 4}));
  EXPECT_EQ(resumed_first[0], (std::vector<size_t>{plan[0][3]}));
  EXPECT_EQ(resumed_first[1], plan[2]);
  EXPECT_EQ(resumed_first[2], (std::vector<size_t>(plan[0].begin(), plan[0].begin() + 3)));
  EXPECT_EQ(resumed_first[3], plan[1]);

  std::vector<const bla::sweep::Point*> points;
  for (size_t i : plan[0]) points.push_back(&grid.points[i]);
  auto args = bla::sweep::ensemble_arguments(spec, points, {"r0", "r1", "r2", "r3"});
  EXPECT_EQ(
      bla::sweep::shell_command("bla-train", args),
      "bla-train sweeps/b.yaml --set model.mixer=bla --set model.mixers.bla.slots=4 "
      "--member 'train.lr=1e-3,run.seed=1' --member 'train.lr=1e-3,run.seed=2' --member 'train.lr=3e-3,run.seed=1' "
      "--member 'train.lr=3e-3,run.seed=2' --out r0 --out r1 --out r2 --out r3 --resume auto --regroup");
  EXPECT_EQ(bla::sweep::parse_ensemble("auto"), 16);
  EXPECT_EQ(bla::sweep::parse_ensemble("off"), 1);
  EXPECT_EQ(bla::sweep::parse_ensemble("8"), 8);
  EXPECT_THROW(bla::sweep::parse_ensemble("0"), bla::util::ArgumentError);
}

// End to end with the real bla-train: a sweep column of seeds x rates runs as
// one ensemble; every point is a run directory of its own in the CSV; a
// second call finds them all done.
TEST(SweepEnsembles, ASweepColumnRunsAsOneEnsembleEndToEnd) {
  TempDir tmp;
  write_file(tmp / "base.yaml", bla::testing::tiny_mqar_config());
  const std::string sweep = write_file(tmp / "s.yaml", R"(base: base.yaml
set: {train.steps: 6, train.checkpoint_every: 0, data.validation_examples: 16}
grid: {train.lr: [3e-3, 1e-3], run.seed: [1, 2]}
)");
  const std::string out = tmp / "out";
  auto run = run_command(kSweep + " " + sweep + " --out " + out + " --bla-train " + kTrain, 300);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("4 points: 0 done already (skipped), 0 to resume, 4 new; 1 processes (1 ensembles"),
            std::string::npos) << run.output;
  EXPECT_NE(run.output.find("start ensemble of 4: lr-3e-3_seed-1, lr-3e-3_seed-2, lr-1e-3_seed-1, lr-1e-3_seed-2"),
            std::string::npos) << run.output;
  auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 5u);
  for (size_t row = 1; row <= 4; ++row) {
    EXPECT_EQ(column(csv, row, "status"), "done") << row;
    EXPECT_EQ(column(csv, row, "steps"), "6") << row;
    EXPECT_NE(column(csv, row, "validation_accuracy"), "") << row;  // the final weights on the validation split
    EXPECT_EQ(column(csv, row, "validation_examples"), "16.0") << row;
    const auto summary = nlohmann::json::parse(bla::util::read_file(column(csv, row, "run_dir") + "/summary.json"));
    EXPECT_EQ(summary["ensemble"]["members"], 4) << row;
    const auto config = bla::util::read_file(column(csv, row, "run_dir") + "/config.yaml");
    EXPECT_NE(config.find("seed: " + std::string(row % 2 == 1 ? "1" : "2")), std::string::npos) << config;
  }
  auto again = run_command(kSweep + " " + sweep + " --out " + out + " --bla-train " + kTrain, 60);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("4 points: 4 done already (skipped)"), std::string::npos) << again.output;
}

// An ensemble too large for the memory a run may use (run.memory_limit_gb:
// 4 MiB, about 4 tiny members) exits 6; bla-sweep runs its members again as
// ensembles of half the size, until they fit.
TEST(SweepEnsembles, AnEnsembleThatDoesNotFitIsSplitInHalvesUntilItFits) {
  TempDir tmp;
  write_file(tmp / "base.yaml", bla::testing::tiny_mqar_config());
  const std::string sweep = write_file(tmp / "s.yaml", R"(base: base.yaml
set: {train.steps: 2, train.checkpoint_every: 0, run.memory_limit_gb: 0.004}
grid: {run.seed: [1, 2, 3, 4, 5, 6, 7, 8]}
)");
  const std::string out = tmp / "out";
  auto run = run_command(kSweep + " " + sweep + " --out " + out + " --bla-train " + kTrain, 300);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("bla-sweep: an ensemble of 8 did not fit in memory (exit 6, "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("its 8 unfinished members run as ensembles of 4 and 4"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("start ensemble of 4: seed-5, seed-6, seed-7, seed-8"), std::string::npos) << run.output;
  auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 9u);
  for (size_t row = 1; row <= 8; ++row) EXPECT_EQ(column(csv, row, "status"), "done") << row;
  EXPECT_NE(run.output.find("8 ran, 0 failed"), std::string::npos) << run.output;
}

// Members at a high rate stop early (validation loss at most 4.05 by step 6),
// those at a tiny rate never do: once half the ensemble has finished,
// bla-train --regroup exits 7 and bla-sweep runs the other two at once as an
// ensemble of their own, resumed from their checkpoints, to the end.
TEST(SweepEnsembles, MembersThatStopEarlyLeaveTheOthersToASmallerEnsemble) {
  TempDir tmp;
  write_file(tmp / "base.yaml", bla::testing::tiny_mqar_config());
  const std::string sweep = write_file(tmp / "s.yaml", R"(base: base.yaml
set: {train.checkpoint_every: 0, data.validation_examples: 32, train.validation_every: 2,
      train.early_stop_metric: loss, train.early_stop_at: 4.05}
grid: {run.seed: [5, 6], train.lr: [1e-6, 1e-2]}
)");
  const std::string out = tmp / "out";
  auto run = run_command(kSweep + " " + sweep + " --out " + out + " --bla-train " + kTrain, 300);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("bla-sweep: 2 of an ensemble's 4 members finished early ("), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("its other 2 continue as an ensemble of 2"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("start ensemble of 2: seed-5_lr-1e-6, seed-6_lr-1e-6"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("4 ran, 0 failed"), std::string::npos) << run.output;
  auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 5u);
  for (size_t row = 1; row <= 4; ++row) {
    EXPECT_EQ(column(csv, row, "status"), "done") << row;
    const bool slow = column(csv, row, "train.lr") == "1e-6";
    const int steps = std::stoi(column(csv, row, "steps"));
    if (slow) EXPECT_EQ(steps, 12) << row;
    if (!slow) EXPECT_LE(steps, 6) << row;  // stopped early, the second of them at step 6 at the latest
    const auto summary = nlohmann::json::parse(bla::util::read_file(column(csv, row, "run_dir") + "/summary.json"));
    EXPECT_EQ(summary["ensemble"]["members"], slow ? 2 : 4) << row;
  }
}

// A Ctrl-C reaches the terminal's whole process group. The runs bla-sweep
// started sit in groups of their own, so each hears the signal once (from
// bla-sweep) and can finish its step and checkpoint (bla-train exits 5 then;
// a second signal would end it at once).
TEST(SweepRun, ACtrlCToTheProcessGroupReachesEachRunOnceAndItEndsInterrupted) {
  TempDir tmp;
  const std::string fake = write_file(tmp / "fake-train", R"SH(#!/bin/sh
out=""; prev=""
for a in "$@"; do [ "$prev" = "--out" ] && out=$a; prev=$a; done
mkdir -p "$out"
got=0
trap 'got=$((got+1)); echo "signal $got" >> "$out/signals"' INT TERM
# Its process group (field 5 of /proc/PID/stat) against bla-sweep's.
echo "$(cut -d' ' -f5 /proc/$$/stat) $(cut -d' ' -f5 /proc/$PPID/stat) $$" > "$out/groups"
echo started > "$(dirname "$(dirname "$out")")/started"
i=0
while [ $got -eq 0 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
sleep 1
exit 5
)SH");
  ::chmod(fake.c_str(), 0755);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string sweep = write_file(tmp / "s.yaml", "base: base.yaml\ngrid: {train.lr: [1e-3]}\n");
  const std::string out = tmp / "out";
  // Once its run started, SIGINT to bla-sweep's whole process group, as a terminal's Ctrl-C.
  const std::string ctrl_c = write_signal_script(tmp / "ctrl-c", out + "/started", "INT", true);
  auto run = run_command(ctrl_c + " " + kSweep + " " + sweep + " --out " + out + " --jobs 1 --ensemble off --bla-train " + fake, 60);
  EXPECT_EQ(run.status, 130) << run.output;
  EXPECT_EQ(bla::util::read_file(out + "/runs/lr-1e-3/signals"), "signal 1\n");
  // The run leads a process group of its own, not bla-sweep's. (The count
  // above alone cannot tell: in this shell script two signals microseconds
  // apart can merge into one; bla-train's handler sees them apart.)
  std::istringstream groups(bla::util::read_file(out + "/runs/lr-1e-3/groups"));
  long own = 0, sweeps = 0, pid = 0;
  groups >> own >> sweeps >> pid;
  EXPECT_EQ(own, pid);
  EXPECT_NE(own, sweeps);
  auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 2u);
  EXPECT_EQ(column(csv, 1, "status"), "interrupted");
  EXPECT_EQ(column(csv, 1, "exit_code"), "5");
}

namespace {

// A stand-in for bla-train whose validation accuracy depends on the point:
// 0.4 at lr 1e-3, 0.9 at 3e-3, 0.6 at 1e-2 (0.95 with slots 8, where 3e-3
// gives 0.5), plus 0.01 x the seed; lr crash exits 1. Records its arguments
// in <sweep>/calls.txt.
std::string write_selecting_train(const TempDir& tmp) {
  const std::string path = tmp / "selecting-train";
  std::ofstream(path) << R"SH(#!/bin/sh
out=""; prev=""; lr=""; seed=""; slots=""
for a in "$@"; do
  [ "$prev" = "--out" ] && out=$a
  case "$a" in train.lr=*) lr=${a#train.lr=};; run.seed=*) seed=${a#run.seed=};; model.mixers.bla.slots=*) slots=${a#*=};; esac
  prev=$a
done
echo "$*" >> "$(dirname "$(dirname "$out")")/calls.txt"
case "$slots/$lr" in
  */crash) exit 1;;
  */1e-3) acc=0.4;;
  8/3e-3) acc=0.5;;
  */3e-3) acc=0.9;;
  8/1e-2) acc=0.95;;
  */1e-2) acc=0.6;;
  8/3e-2) acc=0.97;;
  */3e-2) acc=0.2;;
  8/1e-1) acc=0.96;;
  */1e-1) acc=0.1;;
  */3e-4) acc=0.3;;
esac
mkdir -p "$out"
printf '{"task":"mqar","steps":12,"test":{"accuracy":%s},"validation":{"accuracy":%s%s},"state":{"total_numel":300}}\n' \
  "$acc" "$acc" "$seed" > "$out/summary.json"
)SH";
  ::chmod(path.c_str(), 0755);
  return path;
}

// The names of the rows of a results.csv whose status is done.
std::set<std::string> done_names(const std::vector<std::vector<std::string>>& csv) {
  std::set<std::string> done;
  for (size_t row = 1; row < csv.size(); ++row) {
    if (column(csv, row, "status") == "done") done.insert(column(csv, row, "name"));
  }
  return done;
}

const char* kSelectingSweep = R"(base: base.yaml
grid: {train.lr: [1e-3, 3e-3, 1e-2, crash], run.seed: [1, 2, 3]}
select: {key: train.lr, seeds: [1]}
groups:
  - {label: bla, set: {model.mixer: bla}, grid: {model.mixers.bla.slots: [4, 8]}}
)";

}  // namespace

// select: the first seed tries every rate; the other seeds run at the rate it
// chose, per point of the other axes; a rate whose trial failed is not chosen.
TEST(SweepSelect, TheFirstSeedTriesEveryValueAndTheOthersRunAtTheChosenOne) {
  TempDir tmp;
  const std::string fake = write_selecting_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string sweep = write_file(tmp / "s.yaml", kSelectingSweep);
  const std::string out = tmp / "out";
  auto dry = run_command(kSweep + " " + sweep + " --out " + out + " --dry-run --ensemble off --bla-train " + fake, 60);
  ASSERT_EQ(dry.status, 0) << dry.output;
  EXPECT_NE(dry.output.find("bla-sweep: select: bla_slots-4_lr-1e-3_seed-2 and its other seeds: held until its 4 "
                            "trials (seeds 1) finish"),
            std::string::npos) << dry.output;

  auto run = run_command(kSweep + " " + sweep + " --out " + out + " --ensemble off --bla-train " + fake, 60);
  EXPECT_EQ(run.status, 1) << run.output;  // the crash trials failed
  EXPECT_NE(run.output.find("bla-sweep: select: bla_slots-4_lr-1e-3_seed-2 and its other seeds: train.lr = 3e-3 "
                            "(validation_accuracy 0.91, mean over seeds 1)"),
            std::string::npos) << run.output;
  EXPECT_NE(run.output.find("bla_slots-8_lr-1e-3_seed-2 and its other seeds: train.lr = 1e-2 (validation_accuracy "
                            "0.951, mean over seeds 1)"),
            std::string::npos) << run.output;
  // 2 x 4 trials, then 2 x 2 replicates at the chosen rates.
  EXPECT_EQ(count_lines(out + "/calls.txt"), 12);
  auto csv = read_csv(out + "/results.csv");
  EXPECT_EQ(done_names(csv), (std::set<std::string>{"bla_slots-4_lr-1e-3_seed-1", "bla_slots-4_lr-3e-3_seed-1",
                                         "bla_slots-4_lr-1e-2_seed-1", "bla_slots-4_lr-3e-3_seed-2",
                                         "bla_slots-4_lr-3e-3_seed-3", "bla_slots-8_lr-1e-3_seed-1",
                                         "bla_slots-8_lr-3e-3_seed-1", "bla_slots-8_lr-1e-2_seed-1",
                                         "bla_slots-8_lr-1e-2_seed-2", "bla_slots-8_lr-1e-2_seed-3"}));
  EXPECT_EQ(csv.size(), 1u + 10u + 2u);  // the header, 10 done, 2 failed trials; rates not chosen have no rows

  // Again: the finished points are skipped and the choice is made from what is on disk; the failed trials rerun.
  auto again = run_command(kSweep + " " + sweep + " --out " + out + " --ensemble off --bla-train " + fake, 60);
  EXPECT_EQ(again.status, 1) << again.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 14);
  EXPECT_NE(again.output.find("24 points: 10 done already (skipped), 2 to run now, 12 held for a choice or not chosen"),
            std::string::npos) << again.output;
  EXPECT_NE(again.output.find("bla-sweep: wave 2: 1 process, 1 point (0 to resume, 1 new)\n"), std::string::npos)
      << again.output;
}

namespace {

// The run directories bla-train was started on, in the order the calls were made (calls.txt).
std::vector<std::string> started_runs(const std::string& calls) {
  std::vector<std::string> runs;
  std::istringstream in(bla::util::read_file(calls));
  for (std::string line; std::getline(in, line);) {
    for (size_t at = line.find("/runs/"); at != std::string::npos; at = line.find("/runs/", at + 1)) {
      const size_t from = at + 6;
      runs.push_back(line.substr(from, line.find(' ', from) - from));
    }
  }
  return runs;
}

// The points of a wave's processes, by name.
std::vector<std::vector<std::string>> wave_names(const bla::sweep::Wave& wave) {
  std::vector<std::vector<std::string>> out;
  for (const auto& process : wave.processes) {
    out.emplace_back();
    for (size_t index : process) out.back().push_back(wave.grid.points.at(index).name);
  }
  return out;
}

}  // namespace

// select runs in waves of one process per slot, planned again after each
// (sweep/waves.h): on one slot the first wave is the first point's trials
// (one ensemble), and once they are done the next is that point's held
// seeds, before the second point's trials.
TEST(SweepSelect, AWaveIsOneProcessPerSlotOfThePendingPointsInGridOrder) {
  const auto spec = bla::sweep::parse_sweep(R"(base: b.yaml
grid: {train.lr: [1e-3, 3e-3], run.seed: [1, 2]}
select: {key: train.lr, seeds: [1]}
groups:
  - {label: bla, set: {model.mixer: bla}, grid: {model.mixers.bla.slots: [4, 8]}}
)", "sweeps/s.yaml");
  const auto grid = bla::sweep::expand(spec);
  ASSERT_EQ(grid.points.size(), 8u);  // slots 4: lr 1e-3 seeds 1, 2, lr 3e-3 seeds 1, 2; then slots 8 alike
  const auto stages = bla::sweep::stages_of(*spec.select, grid, spec.file);
  std::vector<bla::sweep::PointOutcome> known(grid.points.size());  // all pending
  std::vector<bool> resumable(grid.points.size(), false);
  using Names = std::vector<std::vector<std::string>>;

  auto wave = bla::sweep::plan_wave(*spec.select, grid, stages, known, resumable, 1, 4);
  EXPECT_EQ(wave_names(wave), (Names{{"bla_slots-4_lr-1e-3_seed-1", "bla_slots-4_lr-3e-3_seed-1"}}));
  EXPECT_EQ(names_of(wave.grid), (std::vector<std::string>{"bla_slots-4_lr-1e-3_seed-1", "bla_slots-4_lr-3e-3_seed-1",
                                                           "bla_slots-8_lr-1e-3_seed-1",
                                                           "bla_slots-8_lr-3e-3_seed-1"}));
  EXPECT_EQ(wave.later, (std::set<std::string>{"bla_slots-8_lr-1e-3_seed-1", "bla_slots-8_lr-3e-3_seed-1"}));
  // Two slots: both points' trials; one point a process: the first trial alone.
  EXPECT_EQ(wave_names(bla::sweep::plan_wave(*spec.select, grid, stages, known, resumable, 2, 4)),
            (Names{{"bla_slots-4_lr-1e-3_seed-1", "bla_slots-4_lr-3e-3_seed-1"},
                   {"bla_slots-8_lr-1e-3_seed-1", "bla_slots-8_lr-3e-3_seed-1"}}));
  EXPECT_EQ(wave_names(bla::sweep::plan_wave(*spec.select, grid, stages, known, resumable, 1, 1)),
            (Names{{"bla_slots-4_lr-1e-3_seed-1"}}));

  // The first point's trials done: its held seed at the chosen rate (3e-3) runs next, before the second
  // point's trials.
  auto done = [](double accuracy) {
    bla::sweep::PointOutcome outcome;
    outcome.status = "done";
    outcome.summary = {{"validation", {{"accuracy", accuracy}}}};
    return outcome;
  };
  known[0] = done(0.4);
  known[2] = done(0.9);
  wave = bla::sweep::plan_wave(*spec.select, grid, stages, known, resumable, 1, 4);
  EXPECT_EQ(wave_names(wave), (Names{{"bla_slots-4_lr-3e-3_seed-2"}}));
  EXPECT_EQ(wave.grid.points.size(), 5u);  // the 4 trials and the chosen held point, results.csv's rows
  EXPECT_EQ(wave.later, (std::set<std::string>{"bla_slots-8_lr-1e-3_seed-1", "bla_slots-8_lr-3e-3_seed-1"}));

  // A trial that failed earlier in this sweep keeps its row and does not run again (its rate is not chosen);
  // a point with a checkpoint to resume runs first.
  known[2].status = "failed";
  resumable[6] = true;  // bla_slots-8_lr-3e-3_seed-1
  wave = bla::sweep::plan_wave(*spec.select, grid, stages, known, resumable, 1, 4);
  EXPECT_EQ(wave_names(wave), (Names{{"bla_slots-8_lr-3e-3_seed-1"}}));
  EXPECT_EQ(names_of(wave.grid), (std::vector<std::string>{"bla_slots-4_lr-1e-3_seed-1", "bla_slots-4_lr-1e-3_seed-2",
                                                           "bla_slots-4_lr-3e-3_seed-1", "bla_slots-8_lr-1e-3_seed-1",
                                                           "bla_slots-8_lr-3e-3_seed-1"}));
  EXPECT_EQ(wave.later, (std::set<std::string>{"bla_slots-4_lr-1e-3_seed-2", "bla_slots-8_lr-1e-3_seed-1"}));

  // Every point done or stopped: no wave left.
  for (auto& outcome : known) outcome = done(0.5);
  EXPECT_TRUE(bla::sweep::plan_wave(*spec.select, grid, stages, known, resumable, 1, 4).processes.empty());

  // The shipped MQAR sweep on one GPU with ensembles of 4: the first wave is the largest BLA state's 4 trials.
  const auto mqar = bla::sweep::load_sweep(std::string(BLA_SOURCE_DIR) + "/configs/sweeps/mqar.yaml");
  const auto bla_points = bla::sweep::only_groups(bla::sweep::expand(mqar), {"bla"}, mqar.file);
  const auto mqar_wave =
      bla::sweep::plan_wave(*mqar.select, bla_points, bla::sweep::stages_of(*mqar.select, bla_points, mqar.file),
                            std::vector<bla::sweep::PointOutcome>(bla_points.points.size()),
                            std::vector<bool>(bla_points.points.size(), false), 1, 4);
  EXPECT_EQ(wave_names(mqar_wave), (Names{{"bla_slots-128_lr-4.6e-4_seed-1", "bla_slots-128_lr-2.2e-3_seed-1",
                                           "bla_slots-128_lr-1.0e-2_seed-1", "bla_slots-128_lr-4.6e-2_seed-1"}}));
}

// End to end with one job: each point's trials, then its held seeds at the
// chosen rate, then the next point's trials (a sweep cut short leaves whole
// points); results.csv ends with the rows one batch of trials gave.
TEST(SweepSelect, WithOneJobAPointsHeldSeedsRunBeforeTheNextPointsTrials) {
  TempDir tmp;
  const std::string fake = write_selecting_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string sweep = write_file(tmp / "s.yaml", kSelectingSweep);
  const std::string out = tmp / "out";
  auto run = run_command(kSweep + " " + sweep + " --out " + out + " --jobs 1 --ensemble off --bla-train " + fake, 60);
  EXPECT_EQ(run.status, 1) << run.output;  // the crash trials failed
  EXPECT_EQ(started_runs(out + "/calls.txt"),
            (std::vector<std::string>{"bla_slots-4_lr-1e-3_seed-1", "bla_slots-4_lr-3e-3_seed-1",
                                      "bla_slots-4_lr-1e-2_seed-1", "bla_slots-4_lr-crash_seed-1",
                                      "bla_slots-4_lr-3e-3_seed-2", "bla_slots-4_lr-3e-3_seed-3",
                                      "bla_slots-8_lr-1e-3_seed-1", "bla_slots-8_lr-3e-3_seed-1",
                                      "bla_slots-8_lr-1e-2_seed-1", "bla_slots-8_lr-crash_seed-1",
                                      "bla_slots-8_lr-1e-2_seed-2", "bla_slots-8_lr-1e-2_seed-3"}));
  EXPECT_NE(run.output.find("bla-sweep: wave 12: 1 process, 1 point (0 to resume, 1 new)\n"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("bla-sweep: finished in "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find(" (12 waves): 10 ran, 2 not done (failed, stale or stopped), 0 skipped | "),
            std::string::npos) << run.output;
  // The rows of the sweep run as one batch of trials, then one of held seeds; every run made in this call "ran".
  const auto csv = read_csv(out + "/results.csv");
  std::vector<std::string> rows;
  for (size_t row = 1; row < csv.size(); ++row) {
    rows.push_back(column(csv, row, "name") + " " + column(csv, row, "status") + " " + column(csv, row, "action") +
                   " " + column(csv, row, "validation_accuracy"));
  }
  EXPECT_EQ(rows, (std::vector<std::string>{
                      "bla_slots-4_lr-1e-3_seed-1 done ran 0.41", "bla_slots-4_lr-3e-3_seed-1 done ran 0.91",
                      "bla_slots-4_lr-3e-3_seed-2 done ran 0.92", "bla_slots-4_lr-3e-3_seed-3 done ran 0.93",
                      "bla_slots-4_lr-1e-2_seed-1 done ran 0.61", "bla_slots-4_lr-crash_seed-1 failed ran ",
                      "bla_slots-8_lr-1e-3_seed-1 done ran 0.41", "bla_slots-8_lr-3e-3_seed-1 done ran 0.51",
                      "bla_slots-8_lr-1e-2_seed-1 done ran 0.951", "bla_slots-8_lr-1e-2_seed-2 done ran 0.952",
                      "bla_slots-8_lr-1e-2_seed-3 done ran 0.953", "bla_slots-8_lr-crash_seed-1 failed ran "}));
}

// --finish-by: once less time is left than the longest process so far took,
// no process starts; the points not started stay pending (exit 5), and the
// next call runs them.
TEST(SweepRun, FinishByStartsNoProcessThatWouldNotEndInTimeAndTheNextCallGoesOn) {
  TempDir tmp;
  const std::string fake = write_fake_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string sweep = write_file(tmp / "s.yaml", "base: base.yaml\ngrid: {train.lr: [nap1, nap2, nap3]}\n");
  const std::string out = tmp / "out";
  const std::string command = kSweep + " " + sweep + " --out " + out + " --jobs 1 --ensemble off --bla-train " + fake;
  auto run = run_command(command + " --finish-by 3", 60);
  EXPECT_EQ(run.status, 5) << run.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 1);
  EXPECT_NE(run.output.find("bla-sweep: starting nothing more: "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("; 2 processes not started, their points pending (run bla-sweep again to go on)\n"),
            std::string::npos) << run.output;
  EXPECT_NE(run.output.find("bla-sweep: stopped for --finish-by in "), std::string::npos) << run.output;
  auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 4u);
  EXPECT_EQ(column(csv, 1, "status"), "done");
  EXPECT_EQ(column(csv, 2, "status"), "pending");
  EXPECT_EQ(column(csv, 3, "status"), "pending");

  run = run_command(command + " --finish-by 60", 60);
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 3);
  csv = read_csv(out + "/results.csv");
  EXPECT_EQ(column(csv, 3, "status"), "done");

  run = run_command(command + " --finish-by 0", 60);
  EXPECT_EQ(run.status, 2) << run.output;
  EXPECT_NE(run.output.find("--finish-by"), std::string::npos) << run.output;
}

// With select, --finish-by holds back the next wave the same way.
TEST(SweepSelect, FinishByStartsNoWaveThatWouldNotEndInTime) {
  TempDir tmp;
  const std::string fake = write_fake_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string sweep = write_file(tmp / "s.yaml", "base: base.yaml\ngrid: {train.lr: [nap, 1e-3], run.seed: "
                                                       "[1, 2]}\nselect: {key: train.lr, seeds: [1]}\n");
  const std::string out = tmp / "out";
  auto run = run_command(kSweep + " " + sweep + " --out " + out + " --jobs 1 --ensemble off --finish-by 3 --bla-train " +
                             fake, 60);
  EXPECT_EQ(run.status, 5) << run.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 1);
  EXPECT_NE(run.output.find("; 1 process not started, its points pending"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("bla-sweep: stopped for --finish-by after "), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("wave 2"), std::string::npos) << run.output;
  const auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(column(csv, 1, "name"), "lr-nap_seed-1");
  EXPECT_EQ(column(csv, 1, "status"), "done");
  EXPECT_EQ(column(csv, 2, "name"), "lr-1e-3_seed-1");
  EXPECT_EQ(column(csv, 2, "status"), "pending");
}

// --expect: a process's expected seconds, used until a longer one has run,
// so that with --finish-by not even the first process starts when it would
// not end in time; its points stay pending (exit 5). With time enough, the
// same call runs them all. Without --finish-by, --expect is a usage error.
TEST(SweepRun, ExpectHoldsBackEvenTheFirstProcessThatWouldNotEndInTime) {
  TempDir tmp;
  const std::string fake = write_fake_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string sweep = write_file(tmp / "s.yaml", "base: base.yaml\ngrid: {train.lr: [nap1, nap2]}\n");
  const std::string out = tmp / "out";
  const std::string command = kSweep + " " + sweep + " --out " + out + " --jobs 1 --ensemble off --bla-train " + fake;
  auto run = run_command(command + " --finish-by 3 --expect 10", 60);
  EXPECT_EQ(run.status, 5) << run.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 0);
  EXPECT_NE(run.output.find(" left before --finish-by 3s, and a process is expected to take (--expect) 10s; 2 "
                            "processes not started, their points pending"),
            std::string::npos) << run.output;
  auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(column(csv, 1, "status"), "pending");
  EXPECT_EQ(column(csv, 2, "status"), "pending");

  run = run_command(command + " --finish-by 60 --expect 10", 60);
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 2);

  run = run_command(command + " --expect 10", 60);
  EXPECT_EQ(run.status, 2) << run.output;
  EXPECT_NE(run.output.find("--expect requires --finish-by"), std::string::npos) << run.output;

  // A process that took longer than --expect says counts from then on (nap: 2 s).
  const std::string again = kSweep + " " + sweep + " --out " + (tmp / "out2") +
                            " --jobs 1 --ensemble off --bla-train " + fake + " --finish-by 3 --expect 1";
  run = run_command(again, 60);
  EXPECT_EQ(run.status, 5) << run.output;
  EXPECT_EQ(count_lines(tmp / "out2/calls.txt"), 1);
  EXPECT_NE(run.output.find(" left before --finish-by 3s, and the longest process so far took 2s; 1 process not "
                            "started"),
            std::string::npos) << run.output;
}

// With select, --expect holds back the first wave the same way.
TEST(SweepSelect, ExpectHoldsBackAFirstWaveThatWouldNotEndInTime) {
  TempDir tmp;
  const std::string fake = write_fake_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string sweep = write_file(tmp / "s.yaml", "base: base.yaml\ngrid: {train.lr: [nap, 1e-3], run.seed: "
                                                       "[1, 2]}\nselect: {key: train.lr, seeds: [1]}\n");
  const std::string out = tmp / "out";
  auto run = run_command(kSweep + " " + sweep + " --out " + out +
                             " --jobs 1 --ensemble off --finish-by 3 --expect 10 --bla-train " + fake, 60);
  EXPECT_EQ(run.status, 5) << run.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 0);
  EXPECT_NE(run.output.find("; 1 process not started, its points pending"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find(" (0 waves): 0 ran, 2 not done"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("wave 1"), std::string::npos) << run.output;
  const auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(column(csv, 1, "status"), "pending");
  EXPECT_EQ(column(csv, 2, "status"), "pending");
}

// A stop signal during a wave ends the sweep at once (no later wave starts),
// with the waiting points pending in results.csv.
TEST(SweepSelect, AStopSignalDuringAWaveEndsTheSweepInterrupted) {
  TempDir tmp;
  const std::string fake = write_fake_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string sweep = write_file(tmp / "s.yaml", "base: base.yaml\ngrid: {train.lr: [slow, 1e-3], run.seed: "
                                                       "[1, 2]}\nselect: {key: train.lr, seeds: [1]}\n");
  const std::string out = tmp / "out";
  const std::string stopper = write_signal_script(tmp / "stop", out + "/calls.txt", "TERM", false);
  auto run = run_command(
      stopper + " " + kSweep + " " + sweep + " --out " + out + " --jobs 1 --ensemble off --bla-train " + fake, 60);
  EXPECT_EQ(run.status, 130) << run.output;
  EXPECT_LT(run.seconds, 20) << run.output;
  EXPECT_NE(run.output.find("bla-sweep: interrupted in wave 1 after "), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("wave 2"), std::string::npos) << run.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 1);
  const auto csv = read_csv(out + "/results.csv");
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(column(csv, 1, "name"), "lr-slow_seed-1");
  EXPECT_EQ(column(csv, 1, "status"), "killed");
  EXPECT_EQ(column(csv, 2, "name"), "lr-1e-3_seed-1");
  EXPECT_EQ(column(csv, 2, "status"), "pending");
}

// select.extend: where the best rate is the largest tried, the next rate
// above runs (seed 1 only), one at a time, until the best lies inside; the
// other seeds then run at that rate. Points whose best lies inside never
// run an extension value, and no point runs the value below (3e-4).
TEST(SweepSelect, ABestValueAtTheGridsEdgeTriesTheExtensionValuesOutward) {
  TempDir tmp;
  const std::string fake = write_selecting_train(tmp);
  write_file(tmp / "base.yaml", "run: {name: x}\n");
  const std::string head = "base: base.yaml\ngrid: {train.lr: [1e-3, 3e-3, 1e-2], run.seed: [1, 2, 3]}\n";
  const std::string groups = "groups:\n  - {label: bla, set: {model.mixer: bla}, grid: {model.mixers.bla.slots: [4, 8]}}\n";
  const std::string sweep =
      write_file(tmp / "s.yaml", head + "select: {key: train.lr, seeds: [1], extend: [3e-4, 3e-2, 1e-1]}\n" + groups);
  const std::string out = tmp / "out";
  auto run = run_command(kSweep + " " + sweep + " --out " + out + " --ensemble off --bla-train " + fake, 60);
  ASSERT_EQ(run.status, 0) << run.output;
  for (const char* line :
       {"bla_slots-8_lr-1e-3_seed-2 and its other seeds: trying train.lr = 3e-2 beyond the grid: the best so far, "
        "1e-2 (validation_accuracy 0.951, mean over seeds 1), is the largest value tried",
        "bla_slots-8_lr-1e-3_seed-2 and its other seeds: trying train.lr = 1e-1 beyond the grid: the best so far, "
        "3e-2 (validation_accuracy 0.971, mean over seeds 1), is the largest value tried",
        "bla_slots-8_lr-1e-3_seed-2 and its other seeds: train.lr = 3e-2 (validation_accuracy 0.971, mean over "
        "seeds 1)\n",
        "bla_slots-4_lr-1e-3_seed-2 and its other seeds: train.lr = 3e-3 (validation_accuracy 0.91, mean over seeds "
        "1)\n"}) {
    EXPECT_NE(run.output.find(line), std::string::npos) << line << "\n" << run.output;
  }
  auto csv = read_csv(out + "/results.csv");
  EXPECT_EQ(done_names(csv), (std::set<std::string>{"bla_slots-4_lr-1e-3_seed-1", "bla_slots-4_lr-3e-3_seed-1",
                                         "bla_slots-4_lr-1e-2_seed-1", "bla_slots-4_lr-3e-3_seed-2",
                                         "bla_slots-4_lr-3e-3_seed-3", "bla_slots-8_lr-1e-3_seed-1",
                                         "bla_slots-8_lr-3e-3_seed-1", "bla_slots-8_lr-1e-2_seed-1",
                                         "bla_slots-8_lr-3e-2_seed-1", "bla_slots-8_lr-1e-1_seed-1",
                                         "bla_slots-8_lr-3e-2_seed-2", "bla_slots-8_lr-3e-2_seed-3"}));
  EXPECT_EQ(csv.size(), 1u + 12u);
  EXPECT_EQ(count_lines(out + "/calls.txt"), 12);

  // With nothing left beyond the best, the choice says so; run again, the finished points are all skipped.
  const std::string short_sweep =
      write_file(tmp / "short.yaml", head + "select: {key: train.lr, seeds: [1], extend: [3e-2]}\n" + groups);
  auto edge = run_command(kSweep + " " + short_sweep + " --out " + out + " --ensemble off --bla-train " + fake, 60);
  ASSERT_EQ(edge.status, 0) << edge.output;
  EXPECT_NE(edge.output.find("bla_slots-8_lr-1e-3_seed-2 and its other seeds: train.lr = 3e-2 (validation_accuracy "
                             "0.971, mean over seeds 1); the largest value tried, and extend has none beyond it"),
            std::string::npos) << edge.output;
  EXPECT_NE(edge.output.find("11 points: 11 done already (skipped), 0 to resume, 0 new"), std::string::npos)
      << edge.output;
  EXPECT_EQ(count_lines(out + "/calls.txt"), 12);
}

TEST(SweepSelect, ASelectThatCannotWorkIsRefusedWithTheFix) {
  EXPECT_EQ(parse_error("base: b.yaml\ngrid: {train.lr: [1e-3], run.seed: [1]}\nselect: {key: train.lr, seeds: [1], "
                        "on: test_accuracy}\n"),
            "sweeps/s.yaml, line 3: select.on: 'test_accuracy' is not a validation number; the choice is made on "
            "validation, e.g. on: validation_accuracy or on: validation_loss (never on a test number)");
  EXPECT_EQ(parse_error("base: b.yaml\ngrid: {train.lr: [1e-3], run.seed: [1]}\nselect: {key: train.lr}\n"),
            "sweeps/s.yaml, line 3: select.seeds: is required: the run.seed values that try every value, e.g. "
            "seeds: [1]");
  EXPECT_EQ(parse_error("base: b.yaml\nselect: {key: train.lr, seeds: [1], by: x}\n"),
            "sweeps/s.yaml, line 2: unknown key 'select.by' (did you mean 'select.key'?)");
  auto stages_error = [](const std::string& yaml) -> std::string {
    const auto spec = bla::sweep::parse_sweep(yaml, "sweeps/s.yaml");
    try {
      bla::sweep::stages_of(*spec.select, bla::sweep::expand(spec), spec.file);
    } catch (const bla::config::ConfigError& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_EQ(stages_error("base: b.yaml\ngrid: {train.lr: [1e-3, 3e-3]}\nselect: {key: train.lr, seeds: [1]}\n"),
            "sweeps/s.yaml: select: point lr-1e-3 does not set run.seed; every point of a sweep with select needs "
            "train.lr and run.seed as axes (e.g. grid: {train.lr: [...], run.seed: [1, 2, 3]})");
  EXPECT_EQ(stages_error("base: b.yaml\ngrid: {train.lr: [1e-3], run.seed: [1, 2]}\nselect: {key: train.lr, seeds: "
                         "[7]}\n"),
            "sweeps/s.yaml, line 3: select.seeds: no point has run.seed 7; list seeds of the grid's run.seed axis");
  // select.extend: numbers beyond a grid axis of the key.
  const std::string lr = "base: b.yaml\ngrid: {train.lr: [1e-3, 1e-2], run.seed: [1]}\n";
  EXPECT_EQ(parse_error(lr + "select: {key: train.lr, seeds: [1], extend: [x]}\n"),
            "sweeps/s.yaml, line 3: select.extend: 'x' is not a number; extend lists values of train.lr beyond the "
            "grid's, e.g. extend: [1e-1]");
  EXPECT_EQ(parse_error(lr + "select: {key: train.lr, seeds: [1], extend: [1e-2]}\n"),
            "sweeps/s.yaml, line 3: select.extend: 1e-2 is already a value of the train.lr axis (sweeps/s.yaml, line "
            "2); extend lists only values beyond the grid");
  EXPECT_EQ(parse_error("base: b.yaml\ngrid: {run.seed: [1]}\nzip: {train.lr: [1e-3, 1e-2], train.warmup_steps: [1, "
                        "2]}\nselect: {key: train.lr, seeds: [1], extend: [1e-1]}\n"),
            "sweeps/s.yaml, line 4: select.extend: train.lr is zipped with other keys (sweeps/s.yaml, line 3); extend "
            "needs train.lr as a grid axis of its own");
  EXPECT_EQ(parse_error("base: b.yaml\ngrid: {run.seed: [1]}\nset: {train.lr: 1e-3}\nselect: {key: train.lr, seeds: "
                        "[1], extend: [1e-1]}\n"),
            "sweeps/s.yaml, line 4: select.extend: no grid sweeps train.lr; extend adds values beyond a grid axis of "
            "train.lr");
  EXPECT_EQ(stages_error(lr + "select: {key: train.lr, seeds: [1], extend: [3e-3]}\n"),
            "sweeps/s.yaml, line 3: select.extend: 3e-3 lies among the grid's train.lr values (1e-3 .. 1e-2, point "
            "lr-1e-3_seed-1); extend lists values below or above them (or put 3e-3 in the grid)");
  EXPECT_EQ(stages_error("base: b.yaml\ngrid: {train.lr: [1e-3, fast], run.seed: [1]}\nselect: {key: train.lr, "
                         "seeds: [1], extend: [1e-1]}\n"),
            "sweeps/s.yaml, line 3: select.extend: point lr-fast_seed-1 has train.lr = fast, not a number; extend "
            "needs every value of train.lr to be a number");
}

// A machine that goes away between calls: the interrupted point's newest
// checkpoint, archived by scripts/sweep_archive.sh with the runs' records
// and unpacked into a fresh folder (as gpu_sweep.sh's RESTORE does), resumes
// there and ends as the uninterrupted run did.
TEST(SweepRun, AnInterruptedPointArchivedWithItsCheckpointResumesInAFreshFolder) {
  TempDir tmp;
  write_file(tmp / "tiny.yaml", bla::testing::tiny_mqar_config("bla", "  mixers: {bla: {window: 32, slots: 4}}\n"));
  const std::string sweep =
      write_file(tmp / "s.yaml", "base: tiny.yaml\ngroups:\n  - {label: bla, grid: {model.mixers.bla.slots: [4]}}\n");
  const std::string out = tmp / "out";
  auto first = run_command(kSweep + " " + sweep + " --out " + out + " --bla-train " + kTrain, 300);
  ASSERT_EQ(first.status, 0) << first.output;
  const std::string accuracy = column(read_csv(out + "/results.csv"), 1, "test_accuracy");

  // Cut after step 6 (as the existing resume test does), then archive it.
  const std::string run_dir = out + "/runs/bla_slots-4";
  ASSERT_TRUE(bla::util::remove_file(run_dir + "/summary.json"));
  for (const char* step : {"00000009", "00000012"}) {
    ASSERT_TRUE(bla::util::remove_file(run_dir + "/checkpoints/step-" + std::string(step) + ".ckpt"));
  }
  const std::string back = tmp / "back";
  auto archive = run_command(std::string(BLA_SOURCE_DIR) + "/scripts/sweep_archive.sh " + out + " " + back + " 3", 60);
  ASSERT_EQ(archive.status, 0) << archive.output;
  EXPECT_NE(archive.output.find("kept runs/bla_slots-4/checkpoints/step-00000006.ckpt (step 6,"), std::string::npos)
      << archive.output;

  const std::string fresh = tmp / "fresh";
  bla::util::create_directories(fresh);
  for (const char* file : {"runs.tgz", "ckpt_bla_slots-4.tgz"}) {
    ASSERT_EQ(run_command("tar xzf " + back + "/" + file + " -C " + fresh, 60).status, 0) << file;
  }
  auto resumed = run_command(kSweep + " " + sweep + " --out " + fresh + " --bla-train " + kTrain, 300);
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("start bla_slots-4 (resuming)"), std::string::npos) << resumed.output;
  const auto csv = read_csv(fresh + "/results.csv");
  EXPECT_EQ(column(csv, 1, "action"), "resumed");
  EXPECT_EQ(column(csv, 1, "test_accuracy"), accuracy);  // CPU resume is exact
}
