#include "bla/config/section.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace bla::config {

std::string ConfigSource::where(const std::string& path, const YAML::Node& node) const {
  // A value set on the command line (or any key below one) came from there.
  for (const auto& [key, value] : overrides) {
    if (path == key || path.rfind(key + ".", 0) == 0) return "--set " + key + "=" + value;
  }
  std::ostringstream out;
  out << file;
  if (node.IsDefined() && node.Mark().line >= 0) out << ", line " << node.Mark().line + 1;
  return out.str();
}

namespace {
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}
}  // namespace

std::string closest_key(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, key.size() / 3) + 1;
  for (const auto& candidate : known) {
    size_t d = edit_distance(key, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

Section::Section(YAML::Node node, std::string path, std::shared_ptr<const ConfigSource> source, YAML::Node resolved)
    : node_(std::move(node)), path_(std::move(path)), source_(std::move(source)), resolved_(std::move(resolved)) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap()) {
    throw ConfigError(source_->where(path_, node_) + ": '" + path_ + "' must be a mapping of keys to values");
  }
}

void Section::fail(const std::string& key, const std::string& message) const {
  YAML::Node at = (node_.IsMap() && node_[key]) ? node_[key] : node_;
  throw ConfigError(source_->where(key_path(key), at) + ": " + key_path(key) + ": " + message);
}

bool Section::has(const std::string& key) const { return node_.IsMap() && node_[key]; }

YAML::Node Section::value(const std::string& key) {
  known_.insert(key);
  if (!node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  YAML::Node v = node_[key];
  if (v && v.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
  return v;
}

namespace {
template <class T>
T convert(const Section& section, const std::string& key, const YAML::Node& node, const char* type_name) {
  if (!node.IsScalar()) section.fail(key, std::string("expected ") + type_name + ", got a " + (node.IsMap() ? "mapping" : "list"));
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    section.fail(key, std::string("expected ") + type_name + ", got '" + node.Scalar() + "'");
  }
}
}  // namespace

int64_t Section::read_integer(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
  YAML::Node v = value(key);
  int64_t result = fallback;
  if (v) {
    // Accept 1e5-style integers, which YAML would otherwise parse as floats.
    double as_real = convert<double>(*this, key, v, "an integer");
    if (std::floor(as_real) != as_real || std::abs(as_real) > 9.0e18) fail(key, "expected an integer, got '" + v.Scalar() + "'");
    result = static_cast<int64_t>(as_real);
    if (result < min || result > max) {
      fail(key, "value " + std::to_string(result) + " is out of range [" + std::to_string(min) + ", " +
                    std::to_string(max) + "]");
    }
  }
  resolved_[key] = result;
  return result;
}

double Section::read_real(const std::string& key, double fallback, double min, double max) {
  YAML::Node v = value(key);
  double result = fallback;
  if (v) {
    result = convert<double>(*this, key, v, "a number");
    if (!std::isfinite(result) || result < min || result > max) {
      std::ostringstream msg;
      msg << "value " << v.Scalar() << " is out of range [" << min << ", " << max << "]";
      fail(key, msg.str());
    }
  }
  resolved_[key] = result;
  return result;
}

bool Section::read_boolean(const std::string& key, bool fallback) {
  YAML::Node v = value(key);
  bool result = fallback;
  if (v) result = convert<bool>(*this, key, v, "true or false");
  resolved_[key] = result;
  return result;
}

std::string Section::read_string(const std::string& key, const std::string& fallback) {
  YAML::Node v = value(key);
  std::string result = fallback;
  if (v) result = convert<std::string>(*this, key, v, "a string");
  resolved_[key] = result;
  return result;
}

std::vector<int64_t> Section::read_integer_list(const std::string& key, const std::vector<int64_t>& fallback,
                                                int64_t min, int64_t max) {
  YAML::Node v = value(key);
  std::vector<int64_t> result = fallback;
  if (v) {
    result.clear();
    if (v.IsScalar()) {
      result.push_back(convert<int64_t>(*this, key, v, "an integer or a list of integers"));
    } else if (v.IsSequence()) {
      for (const auto& item : v) result.push_back(convert<int64_t>(*this, key, item, "a list of integers"));
    } else {
      fail(key, "expected a list of integers");
    }
    for (int64_t x : result) {
      if (x < min || x > max) {
        fail(key, "value " + std::to_string(x) + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
      }
    }
  }
  YAML::Node out(YAML::NodeType::Sequence);
  for (int64_t x : result) out.push_back(x);
  out.SetStyle(YAML::EmitterStyle::Flow);
  resolved_[key] = out;
  return result;
}

Section Section::child(const std::string& key) {
  YAML::Node v = value(key);
  YAML::Node resolved = resolved_[key];
  if (!resolved.IsMap()) {
    // Start from the values as written, so that a section read later (by a
    // task or mixer factory) still appears in the resolved config.
    resolved = v && v.IsMap() ? YAML::Clone(v) : YAML::Node(YAML::NodeType::Map);
    resolved_[key] = resolved;
  }
  return Section(v ? v : YAML::Node(YAML::NodeType::Map), key_path(key), source_, resolved);
}

void Section::require(const Key& key) {
  if (!key.required || has(key.name)) return;
  if (key.type == Key::Type::kValue) fail(key.name, "is required: " + key.meaning);
  std::string what = key.type_doc();
  const std::string range = key.range_doc();
  const std::string in = range.rfind("[", 0) == 0 ? "in " : "";
  if (key.type == Key::Type::kInteger) what = "an integer " + in + range;
  else if (key.type == Key::Type::kReal) what = "a number " + in + range;
  else if (key.type == Key::Type::kChoice) what = "one of: " + range;
  fail(key.name, "is required (" + what + ")");
}

namespace {
void expect_type(const Key& key, std::initializer_list<Key::Type> types) {
  for (auto t : types) {
    if (key.type == t) return;
  }
  throw std::logic_error("config key '" + key.name + "' is read with a reader of another type than it is declared with");
}
}  // namespace

int64_t Section::integer(const Key& key) { return integer(key, key.integer_default); }

int64_t Section::integer(const Key& key, int64_t fallback) {
  expect_type(key, {Key::Type::kInteger});
  require(key);
  return read_integer(key.name, fallback, key.integer_min, key.integer_max);
}

double Section::real(const Key& key) {
  expect_type(key, {Key::Type::kReal});
  require(key);
  return read_real(key.name, key.real_default, key.real_min, key.real_max);
}

bool Section::boolean(const Key& key) {
  expect_type(key, {Key::Type::kBoolean});
  require(key);
  return read_boolean(key.name, key.boolean_default);
}

std::string Section::string(const Key& key) {
  expect_type(key, {Key::Type::kString});
  require(key);
  return read_string(key.name, key.string_default);
}

std::string Section::choice(const Key& key) {
  expect_type(key, {Key::Type::kChoice});
  require(key);
  std::string result = read_string(key.name, key.string_default);
  if (std::find(key.choices.begin(), key.choices.end(), result) == key.choices.end()) {
    std::string hint = closest_key(result, key.choices);
    fail(key.name, "'" + result + "' is not one of: " + join(key.choices) +
                       (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
  }
  return result;
}

std::vector<int64_t> Section::integer_list(const Key& key) {
  expect_type(key, {Key::Type::kIntegerList});
  require(key);
  return read_integer_list(key.name, key.list_default, key.integer_min, key.integer_max);
}

YAML::Node Section::raw(const Key& key) {
  expect_type(key, {Key::Type::kValue});
  require(key);
  return value(key.name);
}

void Section::accept(const std::string& key) { known_.insert(key); }

void Section::finish() const {
  if (!node_.IsMap()) return;
  std::vector<std::string> known(known_.begin(), known_.end());
  for (const auto& entry : node_) {
    auto key = entry.first.as<std::string>();
    if (known_.count(key)) continue;
    std::string hint = closest_key(key, known);
    std::string message = "unknown key '" + key_path(key) + "'";
    message += hint.empty() ? "; known keys here: " + join(known) : " (did you mean '" + key_path(hint) + "'?)";
    throw ConfigError(source_->where(key_path(key), entry.first) + ": " + message);
  }
}

}  // namespace bla::config
