#include "bla/config/members.h"

#include "bla/util/files.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <optional>

namespace bla::config {

namespace {

// The final value of `path`: the last --set of it, else the file's; unset when neither has one.
std::optional<YAML::Node> final_value(const YAML::Node& root, const std::vector<std::string>& overrides,
                                      const std::string& path) {
  for (auto it = overrides.rbegin(); it != overrides.rend(); ++it) {
    auto [key, value] = parse_override(*it);
    if (key != path) continue;
    try {
      return YAML::Load(value);
    } catch (const YAML::Exception&) {
      return std::nullopt;  // load_config reports it
    }
  }
  YAML::Node node = root;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node.IsMap() || !node[key]) return std::nullopt;
    node.reset(node[key]);  // rebinds the handle (operator= would overwrite the tree)
    if (dot == std::string::npos) return node;
    start = dot + 1;
  }
}

// A label part for a value: characters outside [A-Za-z0-9._+-] become '_'.
std::string label_part(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                       c == '_' || c == '+' || c == '-';
    out += plain ? c : '_';
  }
  return out;
}

}  // namespace

MemberConfigs load_member_configs(const std::string& path, const std::vector<std::string>& overrides) {
  // Only a regular file of a config's size is read here (never a device such as /dev/zero); anything else,
  // and a file that is not YAML, is left to load_config below, which says what is wrong.
  YAML::Node root;
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && info.st_size <= (int64_t{16} << 20)) {
    try {
      root = YAML::Load(util::read_file(path));
    } catch (const std::exception&) {
      root = YAML::Node();
    }
  }
  MemberConfigs out;
  std::vector<std::vector<std::string>> values;  // per varying key, its values as YAML text
  for (const auto& key : member_keys()) {
    auto node = final_value(root, overrides, key);
    if (!node || !node->IsSequence()) continue;
    std::vector<std::string> texts;
    for (const auto& item : *node) {
      if (!item.IsScalar()) {
        throw ConfigError(path + ": " + key + " lists " + YAML::Dump(item) +
                          "; a member key's list holds one plain value per member, e.g. " + key + ": [1, 2, 3]");
      }
      texts.push_back(item.Scalar());
    }
    if (texts.empty()) throw ConfigError(path + ": " + key + " is an empty list; give at least one value");
    out.varying.push_back(key);
    values.push_back(texts);
  }
  if (out.varying.empty()) {
    out.configs.push_back(load_config(path, overrides));
    out.labels.push_back("");
    return out;
  }
  // Every combination, the last key varying fastest.
  std::vector<size_t> index(values.size(), 0);
  while (true) {
    std::vector<std::string> member_overrides = overrides;
    std::string label;
    for (size_t k = 0; k < values.size(); ++k) {
      const std::string& key = out.varying[k];
      member_overrides.push_back(key + "=" + values[k][index[k]]);
      label += (label.empty() ? "" : "_") + key.substr(key.rfind('.') + 1) + "-" + label_part(values[k][index[k]]);
    }
    out.configs.push_back(load_config(path, member_overrides));
    out.labels.push_back(label);
    size_t k = values.size();
    while (k > 0) {
      --k;
      if (++index[k] < values[k].size()) break;
      index[k] = 0;
      if (k == 0) return out;
    }
  }
}

MemberConfigs load_listed_members(const std::string& path, const std::vector<std::string>& overrides,
                                  const std::vector<std::string>& members) {
  MemberConfigs out;
  for (const auto& member : members) {
    std::vector<std::string> member_overrides = overrides;
    std::string label;
    size_t start = 0;
    while (start <= member.size()) {
      const size_t comma = member.find(',', start);
      const std::string assignment = member.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      auto [key, value] = parse_override(assignment);
      if (!is_member_key(key)) {
        throw ConfigError("--member " + member + ": " + key + " is not a member key; members may differ only in " +
                          "run.seed, data.seed, train.lr, train.min_lr_ratio, train.warmup_steps, train.beta1, " +
                          "train.beta2, train.eps, train.weight_decay and train.grad_clip (set other keys with --set)");
      }
      if (std::find(out.varying.begin(), out.varying.end(), key) == out.varying.end()) out.varying.push_back(key);
      member_overrides.push_back(assignment);
      label += (label.empty() ? "" : "_") + key.substr(key.rfind('.') + 1) + "-" + label_part(value);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    out.configs.push_back(load_config(path, member_overrides));
    out.labels.push_back(label);
  }
  return out;
}

}  // namespace bla::config
