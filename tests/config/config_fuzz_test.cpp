// A seeded fuzzer over the shipped configs: every mutant (keys deleted or
// given twice, values swapped across types, huge and negative numbers, nulls,
// nested garbage, unicode and bytes that are not UTF-8, second documents,
// complex keys, garbage --set overrides) is either accepted or rejected with
// a ConfigError: never another exception, never a crash, and never a
// duplicated key accepted.
#include "bla/config/config.h"
#include "bla/util/files.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <iostream>
#include <random>
#include <sstream>

namespace {

struct Shipped {
  std::string name, text;
};

std::vector<Shipped> shipped_configs() {
  std::vector<Shipped> out;
  for (const std::string folder : {"/configs", "/configs/equivalence"}) {
    const std::string dir = std::string(BLA_SOURCE_DIR) + folder;
    for (const auto& name : bla::util::list_directory(dir)) {
      if (name.size() > 5 && name.substr(name.size() - 5) == ".yaml") {
        out.push_back({name, bla::util::read_file(bla::util::join_path(dir, name))});
      }
    }
  }
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

// A line "  key: value" (a mapping entry whose value is on the line): the key, or "".
std::string entry_key(const std::string& line) {
  const size_t start = line.find_first_not_of(' ');
  if (start == std::string::npos || line[start] == '#' || line[start] == '-') return "";
  const size_t colon = line.find(": ", start);
  if (colon == std::string::npos) return "";
  const std::string key = line.substr(start, colon - start);
  if (key.find_first_of("{}[]#'\"") != std::string::npos) return "";
  const std::string value = line.substr(colon + 2);
  if (value.empty() || value[0] == '#') return "";
  return key;
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  template <class T>
  const T& pick(const std::vector<T>& items) { return items[below(items.size())]; }

  std::string scalar() {
    static const std::vector<std::string> values{
        "0", "-1", "1", "3", "-9223372036854775808", "9223372036854775807", "18446744073709551616", "1e30", "-1e308",
        "1e-320", "2147483648", "65536", "16777216", "1099511627776", ".nan", ".inf", "-.inf", "0.5", "1e5", "true",
        "no", "~", "null", "''", "\"\"", "abc", "cuda:-1", "cudafoo", "cuda:0", "cuda:99", "a/b", "..",
        "\"\\u00e9t\\u00e9 \\u2603\"", "名前", "\xf0\x9f\x98\x80", "\"\\0\"", "[]", "{}", "[bla]", "[{type: [bla]}]",
        "{type: bla}", "{a: 1, a: 2}", "[1, [2, [3, [4]]]]", "!!binary aGVsbG8=", "&x [1]", "*x", "0x10", "0o17",
        "1_000", "+5", "1.", ".5", "attention", "bla", "swa", "mqar", "text", "regbench", "cosine"};
    return pick(values);
  }

  // Gives a key of a shipped config twice in one mapping: a "key: value" line
  // repeated, or a whole top-level section, block or flow, repeated at the end.
  bool duplicate_key(std::string& text) {
    auto lines = split_lines(text);
    switch (below(2)) {
      case 0: {
        std::vector<size_t> entries;
        for (size_t i = 0; i < lines.size(); ++i) {
          if (!entry_key(lines[i]).empty()) entries.push_back(i);
        }
        if (entries.empty()) return false;
        const size_t i = pick(entries);
        lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(i) + 1, lines[i]);
        text = join_lines(lines);
        return true;
      }
      default: {
        std::vector<size_t> tops;
        for (size_t i = 0; i < lines.size(); ++i) {
          if (!lines[i].empty() && std::isalpha(static_cast<unsigned char>(lines[i][0]))) tops.push_back(i);
        }
        if (tops.empty()) return false;
        const size_t i = pick(tops);
        size_t end = i + 1;
        while (end < lines.size() && (lines[end].empty() || lines[end][0] == ' ' || lines[end][0] == '#')) ++end;
        std::vector<std::string> section(lines.begin() + static_cast<std::ptrdiff_t>(i),
                                         lines.begin() + static_cast<std::ptrdiff_t>(end));
        lines.insert(lines.end(), section.begin(), section.end());
        text = join_lines(lines);
        return true;
      }
    }
  }

  // Other text mutations.
  void mutate_text(std::string& text) {
    auto lines = split_lines(text);
    if (lines.empty()) lines.push_back("");
    const size_t at = below(lines.size());
    switch (below(10)) {
      case 0:  // delete a line
        lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(at));
        break;
      case 1: {  // replace a value
        const std::string key = entry_key(lines[at]);
        if (key.empty()) return;
        lines[at] = lines[at].substr(0, lines[at].find(": ") + 2) + scalar();
        break;
      }
      case 2: {  // empty value
        const std::string key = entry_key(lines[at]);
        if (key.empty()) return;
        lines[at] = lines[at].substr(0, lines[at].find(": ") + 1);
        break;
      }
      case 3:  // a second document
        lines.push_back("---");
        lines.push_back(below(2) ? "train: {lr: 9.0}" : "");
        break;
      case 4:  // a complex key
        lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(at), below(2) ? "? [a, b]" : "? {x: 1}");
        lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(at) + 1, ": 1");
        break;
      case 5: {  // random bytes, unicode or not
        static const std::vector<std::string> bytes{"\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\t",
                                                    "\x01", "é", "\xe2\x98\x83", "{", "}", "[", "]", ":", "'",
                                                    "\"", "&", "*", "!", "%", "@", "|", ">", "#", "-", "? "};
        std::string& line = lines[at];
        line.insert(below(line.size() + 1), pick(bytes));
        break;
      }
      case 6: {  // nested garbage as a value
        const std::string key = entry_key(lines[at]);
        if (key.empty()) return;
        std::string garbage = scalar();
        for (size_t depth = below(30); depth > 0; --depth) {
          garbage = below(2) ? "[" + garbage + ", " + scalar() + "]" : "{k" + std::to_string(depth) + ": " + garbage + "}";
        }
        lines[at] = lines[at].substr(0, lines[at].find(": ") + 2) + garbage;
        break;
      }
      case 7:  // truncate
        text = text.substr(0, below(text.size() + 1));
        return;
      case 8: {  // indent or dedent a line
        std::string& line = lines[at];
        if (below(2) && line.rfind("  ", 0) == 0) line = line.substr(2);
        else line = "  " + line;
        break;
      }
      default: {  // an unknown key
        lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(at), lines[at].substr(0, lines[at].find_first_not_of(' ') == std::string::npos ? 0 : lines[at].find_first_not_of(' ')) + "zzz_unknown: 1");
        break;
      }
    }
    text = join_lines(lines);
  }

  // Tree mutations through yaml-cpp: values swapped across keys and types, keys deleted.
  std::string mutate_tree(const std::string& text) {
    YAML::Node root = YAML::Load(text);
    std::vector<std::pair<YAML::Node, std::string>> entries;  // (mapping, key)
    collect(root, entries, 0);
    if (entries.empty()) return text;
    auto [map, key] = pick(entries);
    switch (below(4)) {
      case 0:
        map.remove(key);
        break;
      case 1: {
        auto [other_map, other_key] = pick(entries);
        YAML::Node mine = YAML::Clone(map[key]);
        map[key] = YAML::Clone(other_map[other_key]);
        other_map[other_key] = mine;
        break;
      }
      case 2:
        map[key] = YAML::Load(scalar());
        break;
      default:
        map[key] = YAML::Load("[" + scalar() + ", {" + key + ": " + scalar() + "}]");
        break;
    }
    YAML::Emitter out;
    out << root;
    return out.c_str();
  }

  std::vector<std::string> overrides() {
    static const std::vector<std::string> paths{"model.mixer", "model.d_model", "model.layers", "model.heads",
                                                "train.batch_size", "train.lr", "run.device", "run.name",
                                                "run.threads", "data.vocab_size", "data.train_examples",
                                                "model.mixers.bla.chunk", "model.mixers.bla.slots", "train",
                                                "model.mixers", "a..b", "run.name.x", "data"};
    std::vector<std::string> out;
    for (size_t n = below(3); n > 0; --n) out.push_back(pick(paths) + "=" + scalar());
    return out;
  }

 private:
  void collect(YAML::Node node, std::vector<std::pair<YAML::Node, std::string>>& out, int depth) {
    if (!node.IsMap() || depth > 8) return;
    for (auto entry : node) {
      if (!entry.first.IsScalar()) continue;
      out.emplace_back(node, entry.first.Scalar());
      collect(entry.second, out, depth + 1);
    }
  }

  std::mt19937_64 rng_;
};

// Parses a mutant: "accepted", "rejected", or a description of any other outcome.
std::string outcome(const std::string& text, const std::vector<std::string>& overrides) {
  try {
    bla::config::parse_config(text, "mutant.yaml", overrides);
    return "accepted";
  } catch (const bla::config::ConfigError& e) {
    const std::string what = e.what();
    if (what.empty() || what.find('\n') != std::string::npos) return "rejected with a message not on one line: " + what;
    return "rejected";
  } catch (const std::exception& e) {
    return std::string("threw ") + typeid(e).name() + ": " + e.what();
  } catch (...) {
    return "threw a non-std exception";
  }
}

TEST(ConfigFuzz, ShippedConfigsAreAccepted) {
  const auto configs = shipped_configs();
  ASSERT_GE(configs.size(), 10u);
  for (const auto& config : configs) EXPECT_EQ(outcome(config.text, {}), "accepted") << config.name;
}

TEST(ConfigFuzz, EveryMutantIsAcceptedOrAConfigErrorAndNoDuplicateIsAccepted) {
  const auto configs = shipped_configs();
  ASSERT_FALSE(configs.empty());
  Mutator mutator(20261125);
  int mutants = 0, rejected = 0, duplicates = 0;
  for (; mutants < 1500; ++mutants) {
    const auto& base = configs[mutator.below(configs.size())];
    std::string text = base.text;
    std::vector<std::string> overrides;
    // A third of the mutants give a key twice (and may add overrides, which
    // must not hide it); the others mutate freely.
    const bool duplicate = mutator.below(3) == 0 && mutator.duplicate_key(text);
    for (size_t rounds = 1 + mutator.below(3); rounds > 0; --rounds) {
      const size_t kind = mutator.below(10);
      if (duplicate) {
        if (kind < 3) overrides = mutator.overrides();
      } else if (kind < 6) {
        mutator.mutate_text(text);
      } else if (kind < 8) {
        try {
          text = mutator.mutate_tree(text);
        } catch (const YAML::Exception&) {
          // Not YAML any more (an earlier text mutation): keep it as it is.
        }
      } else {
        overrides = mutator.overrides();
      }
    }
    const std::string result = outcome(text, overrides);
    if (result != "accepted" && result != "rejected") {
      std::string sets;
      for (const auto& o : overrides) sets += " --set '" + o + "'";
      ADD_FAILURE() << "mutant " << mutants << " of " << base.name << sets << ": " << result << "\n" << text;
      continue;
    }
    if (result == "rejected") ++rejected;
    if (duplicate) {
      ++duplicates;
      EXPECT_EQ(result, "rejected") << "a duplicated key was accepted (mutant " << mutants << " of " << base.name
                                    << "):\n" << text;
    }
  }
  std::cout << mutants << " mutants: " << rejected << " rejected, " << mutants - rejected << " accepted, " << duplicates
            << " with a duplicated key\n";
  // The mutants exercise both outcomes and the duplicate check.
  EXPECT_GE(mutants, 300);
  EXPECT_GT(rejected, mutants / 4);
  EXPECT_LT(rejected, mutants);
  EXPECT_GT(duplicates, 100);
}

}  // namespace
