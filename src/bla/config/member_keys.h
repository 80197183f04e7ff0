// The config keys an ensemble's members may differ in (config/members.h,
// train/ensemble_trainer.h): the seeds (data.seed defaults to run.seed) and
// the optimizer's numbers. Header
// only, so that bla-sweep (which links no LibTorch) groups points by them.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace bla::config {

inline const std::vector<std::string>& member_keys() {
  static const std::vector<std::string> keys = {"run.seed",         "data.seed",   "train.lr",    "train.min_lr_ratio",
                                                "train.warmup_steps", "train.beta1", "train.beta2", "train.eps",
                                                "train.weight_decay", "train.grad_clip"};
  return keys;
}

inline bool is_member_key(const std::string& key) {
  const auto& keys = member_keys();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

}  // namespace bla::config
