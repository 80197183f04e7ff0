// Trains an ensemble: E runs of one architecture that differ only in member
// keys (config/members.h: seed, learning rate and the optimizer's numbers),
// as one batched model (model/ensemble.h) in one process. Each member is a
// run of its own: its run directory holds config.yaml, train.log,
// metrics.jsonl, checkpoints and summary.json exactly as the solo run of its
// config would, its checkpoints are solo checkpoints (bla-eval, bla-export
// and a solo --resume read them), and its numbers are the solo run's (the
// tests hold them to it). A member whose loss or gradient goes non-finite
// under train.on_nonfinite: stop ends alone; the others go on.
#pragma once

#include "bla/config/config.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace bla::train {

struct EnsembleOptions {
  std::vector<std::string> run_dirs;  // one per member
  std::string resume;                 // as RunOptions::resume, for every member
  bool quiet = false;
  bool overwrite = false;
  bool handle_signals = false;
  std::vector<std::string> labels;  // per member, for log lines ("" entries allowed)
  // Once at least half the members have finished early (early stopping) and
  // none has failed, checkpoint the others and throw RegroupError, so that a
  // caller continues them as a smaller ensemble instead of computing the
  // finished members' steps for nothing (bla-sweep passes --regroup).
  bool regroup = false;
};

// The members' run directories: `outs` as given when there is one per
// member; one folder (or none: <run.out_dir>/<run.name>) holding a folder per
// member, named by its label. Throws config::ConfigError on a count that
// fits neither or two members sharing a folder.
std::vector<std::string> member_run_directories(const config::Config& first, const std::vector<std::string>& labels,
                                                const std::vector<std::string>& outs);

// Trains the members (configs that differ only in member keys) and returns
// their summaries. Throws NonFiniteError after the others finished when a
// member failed, InterruptedError on a signal (every member checkpointed),
// RegroupError as EnsembleOptions::regroup says.
std::vector<nlohmann::json> train_ensemble(std::vector<config::Config> configs, const EnsembleOptions& options);

}  // namespace bla::train
