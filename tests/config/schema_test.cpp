// The declared keys (config/schema.h): every section, task and mixer reads
// exactly the keys it declares, every default is accepted by its own
// declaration, a declared range is what the reader enforces, and
// docs/config.md is the generated reference.
#include "bla/config/config.h"
#include "bla/mixers/mixer.h"
#include "bla/sweep/sweep_file.h"
#include "bla/tasks/task.h"
#include "bla/train/config_reference.h"

#include "support/mixer_builder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace {

using bla::config::Key;
using bla::config::Schema;

std::set<std::string> declared(const Schema& schema) {
  std::set<std::string> names;
  for (const auto& key : schema.keys()) names.insert(key.name);
  return names;
}

std::vector<const Schema*> every_schema() {
  std::vector<const Schema*> all{&bla::config::top_schema(), &bla::config::run_schema(), &bla::config::model_schema(),
                                 &bla::config::train_schema()};
  for (const auto* s : bla::mixers::MixerRegistry::instance().schemas()) all.push_back(s);
  for (const auto* s : bla::tasks::data_schemas()) all.push_back(s);
  for (const auto* s : bla::sweep::sweep_schemas()) all.push_back(s);
  return all;
}

TEST(ConfigSchema, EveryDefaultIsAcceptedByItsOwnDeclaration) {
  for (const Schema* schema : every_schema()) {
    for (const Key& key : schema->keys()) {
      SCOPED_TRACE(schema->section() + "." + key.name);
      EXPECT_FALSE(key.meaning.empty());
      if (key.required || !key.default_text.empty()) continue;  // no default, or one computed by the reader
      switch (key.type) {
        case Key::Type::kInteger:
          EXPECT_GE(key.integer_default, key.integer_min);
          EXPECT_LE(key.integer_default, key.integer_max);
          break;
        case Key::Type::kReal:
          EXPECT_GE(key.real_default, key.real_min);
          EXPECT_LE(key.real_default, key.real_max);
          break;
        case Key::Type::kChoice:
          EXPECT_NE(std::find(key.choices.begin(), key.choices.end(), key.string_default), key.choices.end());
          break;
        case Key::Type::kIntegerList:
          for (int64_t x : key.list_default) {
            EXPECT_GE(x, key.integer_min);
            EXPECT_LE(x, key.integer_max);
          }
          break;
        default:
          break;
      }
    }
  }
}

TEST(ConfigSchema, AKeyReadButNotDeclaredOrDeclaredTwiceIsAnError) {
  const Schema schema("demo", "", {bla::config::integer_key("a", 1, 0, 2, "a")});
  try {
    (void)schema["b"];
    FAIL() << "no error";
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(), "demo: key 'b' is read but not declared in its schema");
  }
  try {
    Schema twice("demo", "", {bla::config::integer_key("a", 1, 0, 2, "a"), bla::config::boolean_key("a", true, "a")});
    FAIL() << "no error";
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(), "demo: key 'a' declared twice");
  }
}

// Every mixer, built from configs that together use each of its keys, reads
// exactly the keys its schema declares (no key read undeclared, none declared
// and never read).
TEST(ConfigSchema, EveryMixerReadsExactlyItsDeclaredKeys) {
  const std::map<std::string, std::vector<std::string>> params = {
      {"attention", {"{heads: 2, head_dim: 16, rope: true, rope_base: 500}"}},
      {"swa", {"{window: 8, heads: 2, head_dim: 16, rope: false, rope_base: 500}"}},
      {"bla", {"{window: 8, slots: 4, chunk: 16, heads: 2, head_dim: 16, rope: true, rope_base: 500}",
               "{windows: [8, 16], slots: 4}"}},
      {"gatedfwa", {"{window: 8, block: 16, heads: 2, head_dim: 16, rope: true, rope_base: 500, gate_init_min: 0.01, "
                    "gate_init_max: 0.2}"}},
      {"gla", {"{heads: 2, expand_k: 0.5, expand_v: 1, gate_rank: 8, gate_normalizer: 16, chunk: 16}"}},
      {"gsa", {"{heads: 2, slots: 8, gate_normalizer: 8, chunk: 16}"}},
      {"mamba2", {"{expand: 2, d_state: 8, head_dim: 16, ngroups: 1, conv_kernel: 4, chunk: 16, dt_min: 0.001, "
                  "dt_max: 0.1}"}},
  };
  const auto& registry = bla::mixers::MixerRegistry::instance();
  ASSERT_EQ(registry.names().size(), params.size()) << "a mixer without a case here";
  for (const auto& [type, variants] : params) {
    SCOPED_TRACE(type);
    std::set<std::string> read;
    for (const auto& text : variants) {
      auto config = bla::config::parse_config("data: {task: mqar}\nmodel:\n  d_model: 32\n  layers: 1\n  mixer: " +
                                                  type + "\n  mixers: {" + type + ": " + text + "}\ntrain: {steps: 1}\n",
                                              "m.yaml");
      auto& spec = config.model.mixers.at(0);
      bla::mixers::MixerContext ctx{32, 2, 0, 64};
      registry.get(type, *spec.params, "type").make(*spec.params, ctx);
      spec.params->finish();
      read.insert(spec.params->known().begin(), spec.params->known().end());
    }
    EXPECT_EQ(read, declared(registry.find(type)->keys()));
  }
}

// Every task reads exactly `task` and the keys its schema declares.
TEST(ConfigSchema, EveryTaskReadsExactlyItsDeclaredKeys) {
  const auto schemas = bla::tasks::data_schemas();
  ASSERT_EQ(schemas.size(), bla::tasks::task_names().size() + 1);
  for (const std::string& task : bla::tasks::task_names()) {
    SCOPED_TRACE(task);
    auto config = bla::config::parse_config("data: {task: " + task +
                                                ", path: /nonexistent/folder}\nmodel: {mixer: attention}\n"
                                                "train: {steps: 1}\n",
                                            "t.yaml");
    try {
      bla::tasks::make_task(*config.data, 0);
    } catch (const bla::config::ConfigError&) {
      // text: the folder does not exist; mqar and regbench reject `path` later, in finish().
    }
    std::set<std::string> read = config.data->known();
    read.erase("task");
    const Schema* schema = nullptr;
    for (const auto* s : schemas) {
      if (s->section() == "data (task: " + task + ")") schema = s;
    }
    ASSERT_NE(schema, nullptr);
    EXPECT_EQ(read, declared(*schema));
  }
}

// Every key of run, model and train lands in the resolved config (written to
// each run directory), so each was read; the mixer list is resolved per layer.
TEST(ConfigSchema, RunModelAndTrainReadEveryDeclaredKey) {
  auto config = bla::config::parse_config("data: {task: mqar}\nmodel: {mixer: attention}\ntrain: {steps: 1}\n", "c.yaml");
  for (const Schema* schema : {&bla::config::run_schema(), &bla::config::model_schema(), &bla::config::train_schema()}) {
    for (const Key& key : schema->keys()) {
      if (key.name == "mixers") continue;  // folded into model.mixer's resolved entries
      EXPECT_TRUE(config.resolved[schema->section()][key.name].IsDefined()) << schema->section() << "." << key.name;
    }
  }
  std::set<std::string> sections;
  for (const auto& entry : config.resolved) sections.insert(entry.first.as<std::string>());
  EXPECT_EQ(sections, declared(bla::config::top_schema()));
}

// The range a layer enforces is the one its schema declares (and documents).
TEST(ConfigSchema, TheDeclaredRangeIsWhatTheReaderEnforces) {
  const Key& slots = bla::mixers::MixerRegistry::instance().find("gsa")->keys()["slots"];
  EXPECT_EQ(bla::testing::mixer_build_error("gsa", "{slots: 5000}", "g.yaml"),
            "g.yaml, line 6: model.mixers.gsa.slots: value 5000 is out of range " + slots.range_doc());
  const Key& lr = bla::config::train_schema()["lr"];
  try {
    bla::config::parse_config("data: {task: mqar}\nmodel: {mixer: attention}\ntrain: {steps: 1, lr: 11}\n", "c.yaml");
    FAIL() << "no error";
  } catch (const bla::config::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "c.yaml, line 3: train.lr: value 11 is out of range " + lr.range_doc());
  }
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The text between "<!-- begin: NAME -->\n" and "<!-- end: NAME -->" in docs/config.md.
std::string generated_block(const std::string& doc, const std::string& name) {
  const std::string begin = "<!-- begin: " + name + " -->\n", end = "<!-- end: " + name + " -->";
  const size_t from = doc.find(begin), to = doc.find(end);
  if (from == std::string::npos || to == std::string::npos || to < from) return "(no block " + name + ")";
  return doc.substr(from + begin.size(), to - from - begin.size());
}

TEST(ConfigSchema, DocsConfigMdIsTheGeneratedReference) {
  const std::string doc = file_text(std::string(BLA_SOURCE_DIR) + "/docs/config.md");
  EXPECT_EQ(generated_block(doc, "bla-train --keys"), bla::train::config_reference_markdown())
      << "regenerate: scripts/config_docs.sh";
  EXPECT_EQ(generated_block(doc, "bla-sweep --keys"), bla::config::markdown(bla::sweep::sweep_schemas()))
      << "regenerate: scripts/config_docs.sh";
}

}  // namespace
