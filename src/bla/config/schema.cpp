#include "bla/config/schema.h"

#include <iomanip>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace bla::config {

namespace {
constexpr int64_t kMaxInteger = std::numeric_limits<int64_t>::max();

std::string number(double x) {
  std::ostringstream out;
  out << std::setprecision(10) << x;
  return out.str();
}

std::string integer_range(int64_t min, int64_t max) {
  if (max == kMaxInteger) return ">= " + std::to_string(min);
  return "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
}

Key base(std::string name, Key::Type type, std::string meaning) {
  Key key;
  key.name = std::move(name);
  key.type = type;
  key.meaning = std::move(meaning);
  return key;
}

// A table cell: pipes would end the cell.
std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}
}  // namespace

std::string Key::default_doc() const {
  if (required) return "required";
  if (!default_text.empty()) return default_text;
  switch (type) {
    case Type::kInteger: return std::to_string(integer_default);
    case Type::kReal: return number(real_default);
    case Type::kBoolean: return boolean_default ? "true" : "false";
    case Type::kString:
    case Type::kChoice: return string_default.empty() ? "\"\"" : string_default;
    case Type::kIntegerList: {
      std::string out;
      for (int64_t x : list_default) out += (out.empty() ? "" : ", ") + std::to_string(x);
      return "[" + out + "]";
    }
    case Type::kValue: return "";
  }
  return "";
}

std::string Key::range_doc() const {
  switch (type) {
    case Type::kInteger:
    case Type::kIntegerList: return integer_range(integer_min, integer_max);
    case Type::kReal: return "[" + number(real_min) + ", " + number(real_max) + "]";
    case Type::kBoolean: return "true, false";
    case Type::kChoice: {
      std::string out;
      for (const auto& c : choices) out += (out.empty() ? "" : ", ") + c;
      return out;
    }
    case Type::kString:
    case Type::kValue: return "";
  }
  return "";
}

std::string Key::type_doc() const {
  switch (type) {
    case Type::kInteger: return "integer";
    case Type::kReal: return "number";
    case Type::kBoolean: return "boolean";
    case Type::kString: return "string";
    case Type::kChoice: return "one of";
    case Type::kIntegerList: return "integer list";
    case Type::kValue: return type_text;
  }
  return "";
}

Key integer_key(std::string name, int64_t fallback, int64_t min, int64_t max, std::string meaning) {
  Key key = base(std::move(name), Key::Type::kInteger, std::move(meaning));
  key.integer_default = fallback;
  key.integer_min = min;
  key.integer_max = max;
  return key;
}

Key required_integer_key(std::string name, int64_t min, int64_t max, std::string meaning) {
  return required(integer_key(std::move(name), 0, min, max, std::move(meaning)));
}

Key real_key(std::string name, double fallback, double min, double max, std::string meaning) {
  Key key = base(std::move(name), Key::Type::kReal, std::move(meaning));
  key.real_default = fallback;
  key.real_min = min;
  key.real_max = max;
  return key;
}

Key boolean_key(std::string name, bool fallback, std::string meaning) {
  Key key = base(std::move(name), Key::Type::kBoolean, std::move(meaning));
  key.boolean_default = fallback;
  return key;
}

Key string_key(std::string name, std::string fallback, std::string meaning) {
  Key key = base(std::move(name), Key::Type::kString, std::move(meaning));
  key.string_default = std::move(fallback);
  return key;
}

Key choice_key(std::string name, std::string fallback, std::vector<std::string> choices, std::string meaning) {
  Key key = base(std::move(name), Key::Type::kChoice, std::move(meaning));
  key.string_default = std::move(fallback);
  key.choices = std::move(choices);
  return key;
}

Key integer_list_key(std::string name, std::vector<int64_t> fallback, int64_t min, int64_t max, std::string meaning) {
  Key key = base(std::move(name), Key::Type::kIntegerList, std::move(meaning));
  key.list_default = std::move(fallback);
  key.integer_min = min;
  key.integer_max = max;
  return key;
}

Key value_key(std::string name, std::string type_text, std::string default_text, std::string meaning) {
  Key key = base(std::move(name), Key::Type::kValue, std::move(meaning));
  key.type_text = std::move(type_text);
  key.default_text = std::move(default_text);
  return key;
}

Key computed_default(Key key, std::string text) {
  key.default_text = std::move(text);
  return key;
}

Key required(Key key) {
  key.required = true;
  return key;
}

Schema::Schema(std::string section, std::string summary, std::vector<Key> keys)
    : section_(std::move(section)), summary_(std::move(summary)), keys_(std::move(keys)) {
  for (size_t i = 0; i < keys_.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (keys_[i].name == keys_[j].name) throw std::logic_error(section_ + ": key '" + keys_[i].name + "' declared twice");
    }
  }
}

const Key& Schema::operator[](const std::string& name) const {
  for (const auto& key : keys_) {
    if (key.name == name) return key;
  }
  throw std::logic_error(section_ + ": key '" + name + "' is read but not declared in its schema");
}

bool Schema::declares(const std::string& name) const {
  for (const auto& key : keys_) {
    if (key.name == name) return true;
  }
  return false;
}

std::vector<Key> concat(std::vector<Key> first, const std::vector<Key>& second) {
  first.insert(first.end(), second.begin(), second.end());
  return first;
}

std::string markdown(const std::vector<const Schema*>& schemas) {
  std::ostringstream out;
  for (const Schema* schema : schemas) {
    out << "### `" << schema->section() << "`\n\n";
    if (!schema->summary().empty()) out << schema->summary() << "\n\n";
    out << "| key | type | default | accepted | meaning |\n| --- | --- | --- | --- | --- |\n";
    for (const auto& key : schema->keys()) {
      const std::string range = key.range_doc();
      out << "| `" << key.name << "` | " << key.type_doc() << " | " << cell(key.default_doc()) << " | "
          << cell(range) << " | " << cell(key.meaning) << " |\n";
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace bla::config
