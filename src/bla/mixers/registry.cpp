#include "bla/config/mixer_types.h"
#include "bla/config/section.h"
#include "bla/mixers/mixer.h"

#include <torch/torch.h>

namespace bla::mixers {

int64_t MixerState::bytes() const {
  int64_t total = 0;
  for (const auto& [name, tensor] : tensors) {
    if (tensor.defined()) total += tensor.numel() * static_cast<int64_t>(tensor.element_size());
  }
  return total;
}

MixerRegistry& MixerRegistry::instance() {
  static MixerRegistry registry;
  return registry;
}

void MixerRegistry::add(MixerInfo info) {
  auto name = info.name;
  if (!mixers_.emplace(name, std::move(info)).second) {
    throw std::logic_error("mixer '" + name + "' is registered twice");
  }
  config::add_mixer_type(name);
}

const MixerInfo* MixerRegistry::find(const std::string& name) const {
  auto it = mixers_.find(name);
  return it == mixers_.end() ? nullptr : &it->second;
}

const MixerInfo& MixerRegistry::get(const std::string& name, const config::Section& where, const std::string& key) const {
  if (const auto* info = find(name)) return *info;
  config::check_mixer_type(name, where, key);  // fails: every registered type is known there
  throw std::logic_error("mixer '" + name + "' is known to the config but not registered");
}

std::vector<std::string> MixerRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, info] : mixers_) out.push_back(name);
  return out;
}

std::vector<const config::Schema*> MixerRegistry::schemas() const {
  std::vector<const config::Schema*> out;
  for (const auto& [name, info] : mixers_) out.push_back(&info.keys());
  return out;
}

}  // namespace bla::mixers
