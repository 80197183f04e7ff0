// The declared keys of a config section: for each its type, default, range
// and meaning. One Schema per section (run, model, train), per task (the
// data section) and per mixer (model.mixers.<type>); the code that reads a
// section reads every key through its declaration (Section's readers take a
// Key), and `bla-train --keys` prints every Schema as docs/config.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bla::config {

struct Key {
  enum class Type { kInteger, kReal, kBoolean, kString, kChoice, kIntegerList, kValue };
  std::string name;
  Type type = Type::kInteger;
  std::string meaning;   // one line for the docs
  bool required = false;
  std::string default_text;  // set for a default computed from other keys (e.g. "model.heads")
  std::string type_text;     // kValue: the shapes it takes, as the docs show them ("mapping", "name or list")

  int64_t integer_default = 0, integer_min = 0, integer_max = 0;  // kInteger, kIntegerList (range of each entry)
  std::vector<int64_t> list_default;                               // kIntegerList
  double real_default = 0, real_min = 0, real_max = 0;             // kReal
  bool boolean_default = false;                                    // kBoolean
  std::string string_default;                                      // kString, kChoice
  std::vector<std::string> choices;                                // kChoice

  // The default as the docs show it ("64", "model.heads", "required").
  std::string default_doc() const;
  // The accepted values as the docs show it ("[1, 4096]", "`a`, `b`", "true, false").
  std::string range_doc() const;
  // The type as the docs show it ("integer", "number", ...).
  std::string type_doc() const;
};

Key integer_key(std::string name, int64_t fallback, int64_t min, int64_t max, std::string meaning);
Key required_integer_key(std::string name, int64_t min, int64_t max, std::string meaning);
Key real_key(std::string name, double fallback, double min, double max, std::string meaning);
Key boolean_key(std::string name, bool fallback, std::string meaning);
Key string_key(std::string name, std::string fallback, std::string meaning);
Key choice_key(std::string name, std::string fallback, std::vector<std::string> choices, std::string meaning);
Key integer_list_key(std::string name, std::vector<int64_t> fallback, int64_t min, int64_t max, std::string meaning);
// A value with several shapes, read raw by the code that declares it (e.g.
// model.mixer: a name or a list); the docs show `type_text` and `default_text`.
Key value_key(std::string name, std::string type_text, std::string default_text, std::string meaning);
// `key`, its default computed by the reader from other values; the docs show `text`.
Key computed_default(Key key, std::string text);
// `key`, required (no default).
Key required(Key key);

class Schema {
 public:
  // `section` names where the keys live ("train", "model.mixers.bla", "data (task: mqar)").
  Schema(std::string section, std::string summary, std::vector<Key> keys);
  const std::string& section() const { return section_; }
  const std::string& summary() const { return summary_; }
  const std::vector<Key>& keys() const { return keys_; }
  // The declaration of `name`; std::logic_error when it has none (a reader
  // asking for an undeclared key is a bug, found by the tests that build
  // every section).
  const Key& operator[](const std::string& name) const;
  bool declares(const std::string& name) const;

 private:
  std::string section_;
  std::string summary_;
  std::vector<Key> keys_;
};

// Keys shared by several schemas, concatenated: keys({a, b}, more).
std::vector<Key> concat(std::vector<Key> first, const std::vector<Key>& second);

// Every schema as a Markdown section with a table (docs/config.md).
std::string markdown(const std::vector<const Schema*>& schemas);

}  // namespace bla::config
