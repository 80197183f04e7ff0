// An ensemble's members from one config (train/ensemble_trainer.h): a member
// key that holds a list of values in the file or in --set makes one member
// per value; several listed keys make one member per combination (the last
// key varying fastest), e.g. run.seed: [1, 2, 3] with train.lr: [1e-3, 3e-3]
// is six members.
//
// Member keys are the ones whose value changes neither a parameter's shape
// nor the computation all members share in one batched step: the seed (it
// also seeds the member's data) and the optimizer's numbers. Every other key
// (model, data, batch size, steps, ...) is one value for the whole ensemble.
#pragma once

#include "bla/config/config.h"
#include "bla/config/member_keys.h"

#include <string>
#include <vector>

namespace bla::config {

struct MemberConfigs {
  std::vector<Config> configs;       // one per member (one config when no member key holds a list)
  std::vector<std::string> varying;  // the member keys that hold lists, in member_keys() order
  std::vector<std::string> labels;   // per member its values of `varying`, e.g. "seed-1_lr-0.003"
};

// Loads `path` with `overrides` (as load_config) and expands listed member keys.
MemberConfigs load_member_configs(const std::string& path, const std::vector<std::string>& overrides = {});

// The members named one by one (bla-train --member, as bla-sweep writes it):
// each entry "key=value,key=value" sets member keys of one member on top of
// `overrides`. Throws ConfigError on a key that is not a member key.
MemberConfigs load_listed_members(const std::string& path, const std::vector<std::string>& overrides,
                                  const std::vector<std::string>& members);

}  // namespace bla::config
