// The points of a sweep: every combination of each group's axes.
//
// A point's overrides, later ones winning: the sweep's `set`, the group's
// `set`, then one value of every axis (the group's axes, then the sweep's).
// Its name is the group label and its axis values, e.g.
// "bla_slots-8_lr-3e-3" (a key is named by its shortest ending that no other
// axis of the group shares): it depends only on those, never on the order of the
// points, so adding a value to an axis leaves existing names (and their
// finished run directories) alone.
#pragma once

#include "bla/sweep/sweep_file.h"

#include <string>
#include <vector>

namespace bla::sweep {

struct Point {
  std::string name;   // unique within the sweep; also the run directory's name
  std::string group;  // the group's label
  std::vector<Override> overrides;  // passed to bla-train as --set key=value, in this order
  // The value of `key` in this point ("" when the point does not set it).
  std::string value(const std::string& key) const;
};

struct Grid {
  // Every key a group sets or sweeps, in first-seen order: the CSV's
  // per-point columns (the sweep's own `set` is the same for all points).
  std::vector<std::string> columns;
  std::vector<Point> points;
};

// Expands the groups. Throws bla::config::ConfigError when a key is an axis
// twice in one group, both set and swept in one group, or two points would
// share a name.
Grid expand(const SweepSpec& spec);

// The points of the groups labelled `labels` only (bla-sweep --only), in
// their order. Throws ConfigError naming a label no group has, and the labels
// there are.
Grid only_groups(const Grid& grid, const std::vector<std::string>& labels, const std::string& file);

// The part of a point name that stands for `value`: brackets and spaces
// dropped, "," -> "+", ":" -> "-", anything else not in [A-Za-z0-9._+-] -> "_".
std::string name_part(const std::string& value);

}  // namespace bla::sweep
