#include "bla/sweep/grid.h"

#include "bla/config/section.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace bla::sweep {

using config::ConfigError;

std::string Point::value(const std::string& key) const {
  for (const auto& o : overrides) {
    if (o.key == key) return o.value;
  }
  return "";
}

std::string name_part(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '[' || c == ']' || c == '{' || c == '}' || c == ' ' || c == '"' || c == '\'') continue;
    if (c == ',') {
      out += '+';
    } else if (c == ':') {
      out += '-';
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' || c == '-') {
      out += c;
    } else {
      out += '_';
    }
  }
  return out.empty() ? "_" : out;
}

namespace {

void set_override(std::vector<Override>& overrides, const Override& o) {
  for (auto& existing : overrides) {
    if (existing.key == o.key) {
      existing.value = o.value;
      return;
    }
  }
  overrides.push_back(o);
}

// The last `count` dot-separated components of `key` (all of it when it has fewer).
std::string key_suffix(const std::string& key, int count) {
  size_t start = key.size();
  for (int i = 0; i < count; ++i) {
    size_t dot = start == 0 ? std::string::npos : key.rfind('.', start - 1);
    if (dot == std::string::npos) return key;
    start = dot;
  }
  return key.substr(start + 1);
}

void add_column(std::vector<std::string>& columns, const std::string& key) {
  if (std::find(columns.begin(), columns.end(), key) == columns.end()) columns.push_back(key);
}

// Checks the group's axes against each other and its set; returns each key's
// name in point names: its shortest ending that no other axis key of the
// group shares (slots; swa.window beside bla.window).
std::map<std::string, std::string> short_names(const Group& group, const std::vector<const Axis*>& axes) {
  std::map<std::string, const Axis*> owner;
  for (const Axis* axis : axes) {
    for (const auto& key : axis->keys) {
      if (owner.count(key)) {
        throw ConfigError(axis->where + ": '" + key + "' is already an axis (" + owner[key]->where +
                          ") of group '" + group.label + "'; sweep a key once per group");
      }
      owner[key] = axis;
      for (const auto& o : group.set) {
        if (o.key == key) {
          throw ConfigError(axis->where + ": '" + key + "' is swept here and also set to " + o.value + " by group '" +
                            group.label + "' (" + group.where + "); remove one of them");
        }
      }
    }
  }
  std::map<std::string, std::string> names;
  for (const auto& entry : owner) {
    const std::string& key = entry.first;
    for (int count = 1;; ++count) {
      std::string name = key_suffix(key, count);
      bool shared = false;
      for (const auto& other : owner) shared |= other.first != key && key_suffix(other.first, count) == name;
      if (!shared || name == key) {
        names[key] = name;
        break;
      }
    }
  }
  return names;
}

// The next combination (the last axis varying fastest); false after the last.
bool advance(std::vector<size_t>& index, const std::vector<const Axis*>& axes) {
  for (size_t a = axes.size(); a-- > 0;) {
    if (++index[a] < axes[a]->values.size()) return true;
    index[a] = 0;
  }
  return false;
}

}  // namespace

Grid expand(const SweepSpec& spec) {
  Grid grid;
  std::map<std::string, std::string> where_named;  // point name -> group that made it
  for (const auto& group : spec.groups) {
    // The file's axes, each replaced by the group's axis over the same keys where it has one.
    std::vector<const Axis*> file_axes;
    std::vector<const Axis*> replacing;
    for (const auto& axis : spec.axes) {
      const Axis* chosen = &axis;
      for (const auto& own : group.axes) {
        if (own.keys == axis.keys) {
          chosen = &own;
          replacing.push_back(&own);
        }
      }
      file_axes.push_back(chosen);
    }
    std::vector<const Axis*> own_axes;
    for (const auto& axis : group.axes) {
      if (std::find(replacing.begin(), replacing.end(), &axis) == replacing.end()) own_axes.push_back(&axis);
    }
    std::vector<const Axis*> declared = file_axes;  // in file order, for messages
    declared.insert(declared.end(), own_axes.begin(), own_axes.end());
    const auto names = short_names(group, declared);
    std::vector<const Axis*> axes = own_axes;  // the group's own first: they name what the group is about
    axes.insert(axes.end(), file_axes.begin(), file_axes.end());
    for (const auto& o : group.set) add_column(grid.columns, o.key);
    for (const Axis* axis : axes) {
      for (const auto& key : axis->keys) add_column(grid.columns, key);
    }

    // Odometer over the axes, the first axis varying slowest.
    std::vector<size_t> index(axes.size(), 0);
    do {
      Point point;
      point.group = group.label;
      for (const auto& o : spec.set) set_override(point.overrides, o);
      for (const auto& o : group.set) set_override(point.overrides, o);
      std::string name = group.label.empty() ? "" : name_part(group.label);
      for (size_t a = 0; a < axes.size(); ++a) {
        const auto& keys = axes[a]->keys;
        const auto& values = axes[a]->values[index[a]];
        for (size_t k = 0; k < keys.size(); ++k) {
          set_override(point.overrides, {keys[k], values[k]});
          name += (name.empty() ? "" : "_") + name_part(names.at(keys[k])) + "-" + name_part(values[k]);
        }
      }
      point.name = name.empty() ? "point" : name;
      if (auto seen = where_named.find(point.name); seen != where_named.end()) {
        throw ConfigError(spec.file + ": two points are named '" + point.name + "' (groups '" + seen->second +
                          "' and '" + group.label + "'); give the groups different labels");
      }
      where_named[point.name] = group.label;
      grid.points.push_back(std::move(point));

    } while (advance(index, axes));
  }
  return grid;
}

Grid only_groups(const Grid& grid, const std::vector<std::string>& labels, const std::string& file) {
  std::vector<std::string> known;
  for (const auto& point : grid.points)
    if (std::find(known.begin(), known.end(), point.group) == known.end()) known.push_back(point.group);
  for (const auto& label : labels) {
    if (std::find(known.begin(), known.end(), label) != known.end()) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw ConfigError(file + ": --only: no group is labelled '" + label + "'; the groups are: " + list);
  }
  Grid kept;
  kept.columns = grid.columns;
  for (const auto& point : grid.points)
    if (std::find(labels.begin(), labels.end(), point.group) != labels.end()) kept.points.push_back(point);
  return kept;
}

}  // namespace bla::sweep
