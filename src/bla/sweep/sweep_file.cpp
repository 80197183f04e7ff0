#include "bla/sweep/sweep_file.h"

#include "bla/config/section.h"
#include "bla/util/files.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

namespace bla::sweep {

using config::ConfigError;
using config::ConfigSource;
using config::Section;

namespace {

using Source = std::shared_ptr<const ConfigSource>;

// The keys a group shares with the file's top level.
std::vector<config::Key> axis_keys() {
  return {config::value_key("set", "mapping", "{}", "config keys every point gets: {train.steps: 3000}"),
          config::value_key("grid", "mapping", "{}", "config keys to lists of values; every combination is a point"),
          config::value_key("zip", "mapping or list", "{}",
                            "config keys to lists of one length (or a list of such blocks); the i-th values go "
                            "together")};
}

const config::Schema& file_schema() {
  static const config::Schema schema(
      "sweep file", "A bla-sweep file (README, Sweeps): a base config and the points to run from it.",
      config::concat({config::required(config::string_key("base", "", "the config every point starts from, "
                                                                       "relative to the sweep file")),
                      config::computed_default(config::string_key("out_dir", "", "where the sweep's runs go"),
                                               "runs/sweeps/<file name>")},
                     config::concat(axis_keys(),
                                    {config::value_key("groups", "list", "one group: the file",
                                                       "a list of groups, each with the keys of "
                                                       "`sweep file: groups[i]`"),
                                     config::value_key("select", "mapping", "none",
                                                       "choose one axis on validation with some seeds, then run "
                                                       "the other seeds at the chosen value only; the keys of "
                                                       "`sweep file: select`")})));
  return schema;
}

const config::Schema& select_schema() {
  static const config::Schema schema(
      "sweep file: select",
      "Two stages (README, Sweeps): the points of the first seeds try every value of `key`; the points of the "
      "other seeds run only at the value those trials chose, the best mean of `on` over the first seeds, per "
      "point of every other axis.",
      {config::required(config::string_key("key", "", "the axis chosen, e.g. train.lr")),
       config::required(config::value_key("seeds", "list", "required",
                                          "the run.seed values whose points try every value of key, e.g. [1]")),
       config::string_key("on", "validation_accuracy",
                          "the number of each trial's summary.json the choice is made on: validation_<name> "
                          "(highest wins; lowest for *loss and *tvd)"),
       config::value_key("extend", "list", "[]",
                         "numbers beyond the key's grid values, e.g. [1e-1, 3e-1]: while the best value tried is "
                         "the largest (smallest) tried, the trials of the next one above (below) run")});
  return schema;
}

const config::Schema& group_schema() {
  static const config::Schema schema(
      "sweep file: groups[i]",
      "One group of points, with its own label and axes; the top level's set and axes apply too (a group's grid "
      "or zip over exactly the keys of one of the top level's axes replaces that axis in this group).",
      config::concat({config::computed_default(config::string_key("label", "", "names the group's points"),
                                               "its model.mixer, else group<i+1>")},
                     axis_keys()));
  return schema;
}

[[noreturn]] void fail_at(const Source& source, const std::string& path, const YAML::Node& node,
                          const std::string& message) {
  throw ConfigError(source->where(path, node) + ": " + path + ": " + message);
}

// A config key as bla-train --set takes it: dot-separated names.
bool is_config_key(const std::string& key) {
  if (key.empty() || key.front() == '.' || key.back() == '.' || key.find("..") != std::string::npos) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  });
}

// The value as YAML text for --set: scalars as written, lists and mappings in flow style.
std::string yaml_text(const YAML::Node& node) {
  if (node.IsScalar()) return node.Scalar();
  YAML::Emitter out;
  out.SetSeqFormat(YAML::Flow);
  out.SetMapFormat(YAML::Flow);
  out << node;
  return out.c_str();
}

std::string checked_key(const Source& source, const std::string& path, const YAML::Node& key_node) {
  std::string key = key_node.as<std::string>();
  if (!is_config_key(key)) {
    fail_at(source, path, key_node,
            "'" + key + "' is not a config key; write the dotted path bla-train --set takes, e.g. train.lr");
  }
  return key;
}

std::vector<Override> read_set(Section& section, const std::string& key) {
  YAML::Node node = section.raw(file_schema()[key]);
  std::vector<Override> result;
  if (!node) return result;
  const std::string path = section.key_path(key);
  if (!node.IsMap()) {
    fail_at(section.source(), path, node,
            "expected a mapping of config keys to values, e.g. " + key + ": {train.steps: 800, run.threads: 1}");
  }
  for (const auto& entry : node) {
    std::string name = checked_key(section.source(), path, entry.first);
    if (!entry.second || entry.second.IsNull()) {
      fail_at(section.source(), path + "." + name, entry.first, "has no value; give one, e.g. " + name + ": 1");
    }
    result.push_back({name, yaml_text(entry.second)});
  }
  return result;
}

// The values of one grid or zip key: a non-empty list without repeats.
std::vector<std::string> read_values(const Source& source, const std::string& path, const YAML::Node& key_node,
                                     const YAML::Node& list) {
  if (!list.IsSequence() || list.size() == 0) {
    fail_at(source, path, key_node,
            "expected a non-empty list of values, e.g. [1e-3, 3e-3] (a single value belongs in 'set')");
  }
  std::vector<std::string> values;
  for (const auto& item : list) {
    if (!item || item.IsNull()) fail_at(source, path, item, "a value of the list is empty");
    std::string text = yaml_text(item);
    if (std::find(values.begin(), values.end(), text) != values.end()) {
      fail_at(source, path, item, "the value '" + text + "' appears twice; remove one");
    }
    values.push_back(text);
  }
  return values;
}

void read_grid(Section& section, std::vector<Axis>& axes) {
  YAML::Node node = section.raw(file_schema()["grid"]);
  if (!node) return;
  const std::string path = section.key_path("grid");
  if (!node.IsMap()) {
    fail_at(section.source(), path, node,
            "expected a mapping of config keys to lists of values, e.g. grid: {train.lr: [1e-3, 3e-3]}");
  }
  for (const auto& entry : node) {
    std::string key = checked_key(section.source(), path, entry.first);
    Axis axis;
    axis.keys = {key};
    axis.where = section.source()->where(path + "." + key, entry.first);
    for (auto& value : read_values(section.source(), path + "." + key, entry.first, entry.second)) {
      axis.values.push_back({value});
    }
    axes.push_back(std::move(axis));
  }
}

// One zip block: keys whose lists have one length and advance together.
Axis read_zip_block(const Source& source, const std::string& path, const YAML::Node& block) {
  if (!block.IsMap() || block.size() == 0) {
    fail_at(source, path, block,
            "expected a mapping of config keys to lists of one length, e.g. "
            "{model.mixers.gsa.slots: [8, 16], train.lr: [3e-3, 1e-3]}");
  }
  Axis axis;
  axis.where = source->where(path, block);
  std::vector<std::vector<std::string>> columns;
  std::string lengths;
  for (const auto& entry : block) {
    std::string key = checked_key(source, path, entry.first);
    axis.keys.push_back(key);
    columns.push_back(read_values(source, path + "." + key, entry.first, entry.second));
    lengths += (lengths.empty() ? "" : ", ") + key + ": " + std::to_string(columns.back().size());
  }
  for (const auto& column : columns) {
    if (column.size() != columns.front().size()) {
      fail_at(source, path, block, "the lists have different lengths (" + lengths +
                                       "); zipped keys take their i-th values together, so give them lists of one length");
    }
  }
  for (size_t i = 0; i < columns.front().size(); ++i) {
    std::vector<std::string> row;
    for (const auto& column : columns) row.push_back(column[i]);
    axis.values.push_back(std::move(row));
  }
  return axis;
}

void read_zip(Section& section, std::vector<Axis>& axes) {
  YAML::Node node = section.raw(file_schema()["zip"]);
  if (!node) return;
  const std::string path = section.key_path("zip");
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      axes.push_back(read_zip_block(section.source(), path + "[" + std::to_string(i) + "]", node[i]));
    }
  } else {
    axes.push_back(read_zip_block(section.source(), path, node));
  }
}

std::string default_label(const std::vector<Override>& set, size_t index) {
  for (const auto& o : set) {
    if (o.key == "model.mixer") return o.value;
  }
  return "group" + std::to_string(index + 1);
}

Selection read_select(Section& top) {
  const Source& source = top.source();
  YAML::Node node = top.raw(file_schema()["select"]);
  if (!node.IsMap()) {
    fail_at(source, "select", node, "expected a mapping, e.g. select: {key: train.lr, seeds: [1], on: validation_accuracy}");
  }
  Section section(node, "select", source, YAML::Node(YAML::NodeType::Map));
  Selection selection;
  selection.where = source->where("select", node);
  if (!section.has("key")) section.fail("key", "is required: the axis to choose, e.g. key: train.lr");
  selection.key = section.string(select_schema()["key"]);
  if (!is_config_key(selection.key)) {
    section.fail("key", "'" + selection.key + "' is not a config key; write the dotted path of an axis, e.g. train.lr");
  }
  if (!section.has("seeds")) section.fail("seeds", "is required: the run.seed values that try every value, e.g. seeds: [1]");
  YAML::Node seeds = section.raw(select_schema()["seeds"]);
  selection.seeds = read_values(source, "select.seeds", seeds, seeds);
  selection.on = section.string(select_schema()["on"]);
  if (selection.on.rfind("validation_", 0) != 0 || selection.on.size() == std::string("validation_").size()) {
    section.fail("on", "'" + selection.on + "' is not a validation number; the choice is made on validation, "
                       "e.g. on: validation_accuracy or on: validation_loss (never on a test number)");
  }
  if (section.has("extend")) {
    YAML::Node extend = section.raw(select_schema()["extend"]);
    selection.extend = read_values(source, "select.extend", extend, extend);
    for (size_t i = 0; i < selection.extend.size(); ++i) {
      if (!number_of(selection.extend[i])) {
        fail_at(source, "select.extend", extend[i],
                "'" + selection.extend[i] + "' is not a number; extend lists values of " + selection.key +
                    " beyond the grid's, e.g. extend: [1e-1]");
      }
    }
  }
  section.finish();
  return selection;
}

// The extension values join the axis that sweeps select.key alone, wherever
// one does (the file's grid, a group's grid).
void append_extension(const Selection& selection, SweepSpec& spec) {
  if (selection.extend.empty()) return;
  std::vector<Axis*> axes;
  for (auto& axis : spec.axes) axes.push_back(&axis);
  for (auto& group : spec.groups) {
    for (auto& axis : group.axes) axes.push_back(&axis);
  }
  bool found = false;
  for (Axis* axis : axes) {
    const auto key = std::find(axis->keys.begin(), axis->keys.end(), selection.key);
    if (key == axis->keys.end()) continue;
    if (axis->keys.size() > 1) {
      throw ConfigError(selection.where + ": select.extend: " + selection.key + " is zipped with other keys (" +
                        axis->where + "); extend needs " + selection.key + " as a grid axis of its own");
    }
    for (const auto& value : selection.extend) {
      for (const auto& existing : axis->values) {
        if (existing.front() == value) {
          throw ConfigError(selection.where + ": select.extend: " + value + " is already a value of the " +
                            selection.key + " axis (" + axis->where + "); extend lists only values beyond the grid");
        }
      }
      axis->values.push_back({value});
    }
    found = true;
  }
  if (!found) {
    throw ConfigError(selection.where + ": select.extend: no grid sweeps " + selection.key +
                      "; extend adds values beyond a grid axis of " + selection.key);
  }
}

}  // namespace

std::optional<double> number_of(const std::string& text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text.front()))) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

SweepSpec parse_sweep(const std::string& yaml_text, const std::string& file) {
  auto source = std::make_shared<ConfigSource>();
  source->file = file;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(file + ", line " + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  if (!root.IsMap()) {
    throw ConfigError(file + ": a sweep file is a mapping with keys base, out_dir, set, grid, zip, groups");
  }
  YAML::Node resolved(YAML::NodeType::Map);  // Section records values here; the sweep does not use it
  Section top(root, "", source, resolved);

  SweepSpec spec;
  spec.file = file;
  if (!top.has("base")) {
    top.fail("base", "is required: the config every point starts from, relative to the sweep file, "
                     "e.g. base: ../mqar_attention.yaml");
  }
  std::string base = top.string(file_schema()["base"]);
  if (base.empty()) {
    top.fail("base", "is required: the config every point starts from, relative to the sweep file, "
                     "e.g. base: ../mqar_attention.yaml");
  }
  const std::string folder = util::parent_path(file);
  spec.base_config = folder == "." ? base : util::join_path(folder, base);
  spec.out_dir = top.string(file_schema()["out_dir"]);
  spec.set = read_set(top, "set");
  read_grid(top, spec.axes);
  read_zip(top, spec.axes);

  YAML::Node groups = top.raw(file_schema()["groups"]);
  if (groups) {
    if (!groups.IsSequence() || groups.size() == 0) {
      fail_at(source, "groups", groups,
              "expected a non-empty list of groups, each a mapping with label, set, grid, zip");
    }
    for (size_t i = 0; i < groups.size(); ++i) {
      Section section(groups[i], "groups[" + std::to_string(i) + "]", source, YAML::Node(YAML::NodeType::Map));
      Group group;
      group.where = source->where(section.path(), groups[i]);
      group.set = read_set(section, "set");
      group.label = section.has("label") ? section.string(group_schema()["label"]) : default_label(group.set, i);
      read_grid(section, group.axes);
      read_zip(section, group.axes);
      section.finish();
      spec.groups.push_back(std::move(group));
    }
  } else {
    Group group;
    group.where = file;
    spec.groups.push_back(std::move(group));
  }
  if (top.has("select")) {
    spec.select = read_select(top);
    append_extension(*spec.select, spec);
  }
  top.finish();
  return spec;
}

SweepSpec load_sweep(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the sweep file (check the path)");
  std::stringstream text;
  text << in.rdbuf();
  SweepSpec spec = parse_sweep(text.str(), path);
  if (!util::path_exists(spec.base_config)) {
    throw ConfigError(path + ": base: " + spec.base_config +
                      " does not exist (base is relative to the sweep file's folder)");
  }
  return spec;
}

std::vector<const config::Schema*> sweep_schemas() { return {&file_schema(), &group_schema(), &select_schema()}; }

}  // namespace bla::sweep
