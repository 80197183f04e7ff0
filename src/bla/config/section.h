// Typed, checked access to one YAML mapping of a config file.
//
// Every value is read through a Section, which knows where the mapping came
// from (file and line, or a --set override), records the value it resolved
// (defaults included) for the run directory's resolved config, and, in
// finish(), rejects every key nobody asked for, suggesting the closest known
// key. Errors are ConfigError with the file, key, line and the fix.
#pragma once

#include "bla/config/schema.h"

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace bla::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a config tree came from: the file, and the paths set on the command line.
struct ConfigSource {
  std::string file;                              // e.g. "configs/mqar_attention.yaml"
  std::map<std::string, std::string> overrides;  // "train.lr" -> "3e-4" (from --set)
  // "configs/x.yaml, line 12" or "--set train.lr=3e-4".
  std::string where(const std::string& path, const YAML::Node& node) const;
};

// The known key closest to `key` by edit distance, or "" when none is close.
std::string closest_key(const std::string& key, const std::vector<std::string>& known);

class Section {
 public:
  Section(YAML::Node node, std::string path, std::shared_ptr<const ConfigSource> source,
          YAML::Node resolved);

  // Values of declared keys (schema.h): the key's default, range and choices
  // apply; a required key that is absent is an error naming its range.
  int64_t integer(const Key& key);
  // The same with a default computed from other values (key.default_text says which).
  int64_t integer(const Key& key, int64_t fallback);
  double real(const Key& key);
  bool boolean(const Key& key);
  std::string string(const Key& key);
  std::string choice(const Key& key);
  std::vector<int64_t> integer_list(const Key& key);
  // The raw node of a declared key of several shapes (marked as known).
  YAML::Node raw(const Key& key);

  bool has(const std::string& key) const;
  // A nested mapping; an absent key gives an empty section.
  Section child(const std::string& key);
  // Marks a key as known without reading it (read elsewhere).
  void accept(const std::string& key);

  // Throws for every key present in the file but never read.
  void finish() const;
  // The keys read so far, and those marked by accept.
  const std::set<std::string>& known() const { return known_; }

  // Builds an error about `key` of this section that says where it is.
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

  const std::string& path() const { return path_; }
  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::shared_ptr<const ConfigSource>& source() const { return source_; }
  YAML::Node resolved() const { return resolved_; }

 private:
  YAML::Node value(const std::string& key);  // records the key as known
  int64_t read_integer(const std::string& key, int64_t fallback, int64_t min, int64_t max);
  double read_real(const std::string& key, double fallback, double min, double max);
  bool read_boolean(const std::string& key, bool fallback);
  std::string read_string(const std::string& key, const std::string& fallback);
  std::vector<int64_t> read_integer_list(const std::string& key, const std::vector<int64_t>& fallback, int64_t min,
                                         int64_t max);
  void require(const Key& key);
  YAML::Node node_;
  std::string path_;
  std::shared_ptr<const ConfigSource> source_;
  YAML::Node resolved_;
  std::set<std::string> known_;
};

}  // namespace bla::config
