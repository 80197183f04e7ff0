// A sweep file: a base config, fixed overrides and a grid of config values.
//
//   base: ../mqar_attention.yaml        # relative to the sweep file
//   out_dir: runs/sweeps/mqar           # default of bla-sweep --out
//   set: {train.steps: 800}             # every point
//   grid: {train.lr: [1e-3, 3e-3]}      # axes of every group (cartesian product)
//   groups:                             # the full grid is the union over groups
//     - label: bla
//       set: {model.mixer: bla, model.mixers.bla.window: 64}
//       grid: {model.mixers.bla.slots: [4, 8, 16]}
//     - label: mamba2
//       set: {model.mixer: mamba2}
//       grid: {train.lr: [1e-2, 3e-2]}  # replaces the file's axis over the same keys
//       zip:                            # values that advance together
//         model.mixers.mamba2.d_state: [8, 16]
//         model.mixers.mamba2.head_dim: [16, 32]
//   select:                             # optional: choose train.lr on seed 1, then replicate
//     key: train.lr                     # an axis every point has
//     seeds: [1]                        # the run.seed values that try every value of key
//     on: validation_accuracy           # the summary number the choice is made on
//     extend: [1e-1, 3e-1]              # tried one by one, outward, while the best is the edge
//
// Keys of the sweep file itself are checked like a config's (file, line,
// closest known key); the config keys inside set/grid/zip are checked by
// bla-train, per point. Parsing needs no LibTorch (bla-sweep links none).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace bla::config {
class Schema;
}

namespace bla::sweep {

// A config key and its value as YAML text: "3e-3", "bla", "[swa, bla]".
struct Override {
  std::string key;
  std::string value;
};

// One dimension of a grid: a key with its values, or (zip) several keys whose
// values advance together. values[i] holds one value per key.
struct Axis {
  std::vector<std::string> keys;
  std::vector<std::vector<std::string>> values;
  std::string where;  // "sweep.yaml, line 7", for messages
};

struct Group {
  std::string label;  // names the group's points and its line in the plots
  std::vector<Override> set;
  std::vector<Axis> axes;
  std::string where;
};

// Two stages (sweep/selection.h): the points whose run.seed is one of
// `seeds` try every value of `key`; the points of the other seeds run only at
// the value those trials chose on `on` (a validation number of summary.json,
// "validation_<name>": the highest wins, the lowest for *loss and *tvd).
// `extend` lists numbers beyond the key's grid values, on either side: when
// the best value tried is the largest (smallest) tried, the trials of the
// next extension value above (below) run, one value at a time, until the
// best is no longer at that edge or the list has no value left there. The
// parser appends them to the key's axis, so their points exist (and have
// names); only the trials a choice needs run.
struct Selection {
  std::string key;
  std::vector<std::string> seeds;  // run.seed values, as the grid writes them
  std::string on = "validation_accuracy";
  std::vector<std::string> extend;  // values of key beyond the grid's, as the grid writes them
  std::string where;
};

struct SweepSpec {
  std::string file;         // the sweep file as given
  std::string base_config;  // resolved against the sweep file's folder
  std::string out_dir;      // "" when the file names none
  std::vector<Override> set;
  std::vector<Axis> axes;    // top-level grid and zip: every group's (unless it sweeps the same keys)
  std::vector<Group> groups; // at least one (an unlabelled one when the file has none)
  std::optional<Selection> select;
};

// The number a value's text writes ("1e-2" -> 0.01), if the whole text is one.
std::optional<double> number_of(const std::string& text);

// Parses a sweep file's text; `file` names it in messages and anchors `base`.
// Throws bla::config::ConfigError naming the file, line, key and the fix.
SweepSpec parse_sweep(const std::string& yaml_text, const std::string& file);
SweepSpec load_sweep(const std::string& path);
// The declared keys of a sweep file and of one of its groups (docs/config.md).
std::vector<const config::Schema*> sweep_schemas();

}  // namespace bla::sweep
