#include "bla/sweep/selection.h"

#include "bla/config/section.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

namespace bla::sweep {

namespace {

constexpr const char* kSeedKey = "run.seed";

// The points of one choice share this: their group and every other column's value.
std::string choice_of(const Selection& selection, const Grid& grid, const Point& point) {
  std::string key = point.group;
  for (const auto& column : grid.columns) {
    if (column == selection.key || column == kSeedKey) continue;
    key += "\n" + column + "=" + point.value(column);
  }
  return key;
}

// A trial that will not change any more in this sweep: finished, or stopped for good.
bool settled(const PointOutcome& outcome) {
  return outcome.status == "done" || outcome.status == "failed" || outcome.status == "config_error" ||
         outcome.status == "checkpoint_error" || outcome.status == "nonfinite";
}

bool lower_is_better(const std::string& on) {
  auto ends_with = [&on](const std::string& tail) {
    return on.size() >= tail.size() && on.compare(on.size() - tail.size(), tail.size(), tail) == 0;
  };
  return ends_with("loss") || ends_with("tvd");
}

// summary.json's number for select.on ("validation_accuracy" -> validation.accuracy), if it has one.
std::optional<double> score_of(const Selection& selection, const nlohmann::json& summary) {
  const std::string name = selection.on.substr(std::string("validation_").size());
  if (!summary.is_object() || !summary.contains("validation")) return std::nullopt;
  const auto& validation = summary["validation"];
  if (!validation.is_object() || !validation.contains(name) || !validation[name].is_number()) return std::nullopt;
  const double value = validation[name].get<double>();
  if (!std::isfinite(value)) return std::nullopt;
  return value;
}

struct Candidate {
  std::string value;
  size_t first_index;        // the value's first trial in the grid (ties go to the earlier)
  std::vector<double> scores;
  bool complete = true;      // every trial of the value finished with a score
  bool settled = true;       // every trial of the value settled
};

struct Decision {
  bool ready = true;                   // every trial it needs settled
  std::optional<std::string> value;    // the choice, when one could be made
  double score = 0;
  size_t trials = 0;                   // trials of the grid's values
  std::optional<std::string> trying;   // an extension value whose trials run first
  std::string edge;                    // "largest" or "smallest": where the best so far lies among the values tried
};

double number(const std::string& text) { return number_of(text).value_or(0.0); }

// The best complete candidate (ties to the earlier in the grid), and its mean.
const Candidate* best_of(const std::vector<const Candidate*>& candidates, bool lower, double& best_score) {
  const Candidate* best = nullptr;
  for (const Candidate* candidate : candidates) {
    if (!candidate->complete || candidate->scores.empty()) continue;
    double sum = 0;
    for (double s : candidate->scores) sum += s;
    const double mean = sum / static_cast<double>(candidate->scores.size());
    const bool better = best == nullptr || (lower ? mean < best_score : mean > best_score) ||
                        (mean == best_score && candidate->first_index < best->first_index);
    if (better) {
      best = candidate;
      best_score = mean;
    }
  }
  return best;
}

// The extension candidates of one choice beyond its grid values on one side,
// nearest first.
std::vector<const Candidate*> beyond(const std::map<std::string, Candidate>& extension, double edge, bool above) {
  std::vector<const Candidate*> side;
  for (const auto& entry : extension) {
    const double v = number(entry.first);
    if (above ? v > edge : v < edge) side.push_back(&entry.second);
  }
  std::sort(side.begin(), side.end(), [above](const Candidate* a, const Candidate* b) {
    return above ? number(a->value) < number(b->value) : number(a->value) > number(b->value);
  });
  return side;
}

std::map<std::string, Decision> decide(const Selection& selection, const Grid& grid, const std::vector<Stage>& stages,
                                       const std::vector<PointOutcome>& outcomes) {
  std::map<std::string, std::map<std::string, Candidate>> candidates, extensions;
  std::map<std::string, Decision> decisions;
  for (size_t i = 0; i < grid.points.size(); ++i) {
    const Point& point = grid.points[i];
    const std::string choice = choice_of(selection, grid, point);
    auto& decision = decisions[choice];
    if (stages[i] == Stage::kHeld) continue;
    const PointOutcome& outcome = outcomes.at(i);
    const std::string value = point.value(selection.key);
    auto& pool = stages[i] == Stage::kTrial ? candidates[choice] : extensions[choice];
    Candidate& candidate = pool.try_emplace(value, Candidate{value, i, {}, true, true}).first->second;
    if (!settled(outcome)) candidate.settled = false;
    if (stages[i] == Stage::kTrial) {
      decision.trials += 1;
      if (!settled(outcome)) decision.ready = false;
    }
    const auto score = outcome.status == "done" ? score_of(selection, outcome.summary) : std::nullopt;
    if (score) candidate.scores.push_back(*score);
    else candidate.complete = false;
  }
  const bool lower = lower_is_better(selection.on);
  for (auto& [choice, decision] : decisions) {
    if (!decision.ready) continue;
    std::vector<const Candidate*> tried;
    double low = 0, high = 0;
    for (const auto& entry : candidates[choice]) {
      tried.push_back(&entry.second);
      const double v = selection.extend.empty() ? 0.0 : number(entry.first);
      low = tried.size() == 1 ? v : std::min(low, v);
      high = tried.size() == 1 ? v : std::max(high, v);
    }
    // Each side's extension values count as tried up to the first whose trials have not all settled.
    std::vector<const Candidate*> above, below;
    for (auto* side : {&above, &below}) {
      const bool up = side == &above;
      for (const Candidate* candidate : beyond(extensions[choice], up ? high : low, up)) {
        if (!candidate->settled) break;
        tried.push_back(candidate);
      }
      for (const Candidate* candidate : beyond(extensions[choice], up ? high : low, up)) {
        if (std::find(tried.begin(), tried.end(), candidate) == tried.end()) side->push_back(candidate);
      }
    }
    double best_score = 0;
    const Candidate* best = best_of(tried, lower, best_score);
    if (best == nullptr) continue;
    if (!selection.extend.empty()) {
      double lowest = number(best->value), highest = lowest;
      for (const Candidate* candidate : tried) {
        lowest = std::min(lowest, number(candidate->value));
        highest = std::max(highest, number(candidate->value));
      }
      const double b = number(best->value);
      if (b == highest && !above.empty()) {
        decision.trying = above.front()->value;
        decision.edge = "largest";
      } else if (b == lowest && !below.empty()) {
        decision.trying = below.front()->value;
        decision.edge = "smallest";
      } else if (b == highest || b == lowest) {
        decision.edge = b == highest ? "largest" : "smallest";
      }
    }
    decision.value = best->value;
    decision.score = best_score;
    if (decision.trying) decision.ready = false;
  }
  return decisions;
}

}  // namespace

std::vector<Stage> stages_of(const Selection& selection, const Grid& grid, const std::string& file) {
  std::vector<Stage> stages;
  std::set<std::string> seen_seeds;
  for (const auto& point : grid.points) {
    for (const char* key : {selection.key.c_str(), kSeedKey}) {
      if (point.value(key).empty()) {
        throw config::ConfigError(file + ": select: point " + point.name + " does not set " + key +
                                  "; every point of a sweep with select needs " + selection.key + " and " + kSeedKey +
                                  " as axes (e.g. grid: {" + selection.key + ": [...], " + kSeedKey + ": [1, 2, 3]})");
      }
    }
    const std::string seed = point.value(kSeedKey);
    seen_seeds.insert(seed);
    const bool trial = std::find(selection.seeds.begin(), selection.seeds.end(), seed) != selection.seeds.end();
    const std::string value = point.value(selection.key);
    const bool extension = std::find(selection.extend.begin(), selection.extend.end(), value) != selection.extend.end();
    if (!selection.extend.empty() && !number_of(value)) {
      throw config::ConfigError(selection.where + ": select.extend: point " + point.name + " has " + selection.key +
                                " = " + value + ", not a number; extend needs every value of " + selection.key +
                                " to be a number");
    }
    stages.push_back(!trial ? Stage::kHeld : extension ? Stage::kExtension : Stage::kTrial);
  }
  // Every extension value lies beyond the grid values of each choice (below the smallest or above the largest).
  struct Range {
    std::string point, low, high;  // a trial of the choice; its smallest and largest grid values as written
  };
  std::map<std::string, Range> ranges;
  for (size_t i = 0; i < grid.points.size() && !selection.extend.empty(); ++i) {
    if (stages[i] != Stage::kTrial) continue;
    const std::string value = grid.points[i].value(selection.key);
    auto [it, fresh] = ranges.try_emplace(choice_of(selection, grid, grid.points[i]),
                                          Range{grid.points[i].name, value, value});
    if (*number_of(value) < *number_of(it->second.low)) it->second.low = value;
    if (*number_of(value) > *number_of(it->second.high)) it->second.high = value;
  }
  for (const auto& [choice, range] : ranges) {
    for (const auto& value : selection.extend) {
      const double v = *number_of(value);
      if (v >= *number_of(range.low) && v <= *number_of(range.high)) {
        throw config::ConfigError(selection.where + ": select.extend: " + value + " lies among the grid's " +
                                  selection.key + " values (" + range.low + " .. " + range.high + ", point " +
                                  range.point + "); extend lists values below or above them (or put " + value +
                                  " in the grid)");
      }
    }
  }
  for (const auto& seed : selection.seeds) {
    if (!seen_seeds.count(seed)) {
      throw config::ConfigError(selection.where + ": select.seeds: no point has run.seed " + seed +
                                "; list seeds of the grid's run.seed axis");
    }
  }
  return stages;
}

Grid runnable_points(const std::optional<Selection>& selection, const Grid& grid, const std::vector<Stage>& stages,
                     const std::vector<PointOutcome>& outcomes) {
  if (!selection) return grid;
  const auto decisions = decide(*selection, grid, stages, outcomes);
  Grid runnable{grid.columns, {}};
  for (size_t i = 0; i < grid.points.size(); ++i) {
    const Point& point = grid.points[i];
    const Decision& decision = decisions.at(choice_of(*selection, grid, point));
    const std::string value = point.value(selection->key);
    // Trials always; an extension trial while its choice tries it; a held
    // point once its choice is made and is its value. A point already done
    // stays in (it is skipped), so results.csv keeps every finished run.
    const bool run = stages[i] == Stage::kTrial ||
                     (stages[i] == Stage::kExtension && decision.trying && *decision.trying == value) ||
                     (stages[i] == Stage::kHeld && decision.ready && decision.value && *decision.value == value) ||
                     outcomes.at(i).status == "done";
    if (run) runnable.points.push_back(point);
  }
  return runnable;
}

void describe_choices(const Selection& selection, const Grid& grid, const std::vector<Stage>& stages,
                      const std::vector<PointOutcome>& outcomes, std::ostream& out) {
  const auto decisions = decide(selection, grid, stages, outcomes);
  std::set<std::string> told;
  std::string seeds;
  for (const auto& seed : selection.seeds) seeds += (seeds.empty() ? "" : ", ") + seed;
  for (size_t i = 0; i < grid.points.size(); ++i) {
    if (stages[i] != Stage::kHeld) continue;
    const std::string choice = choice_of(selection, grid, grid.points[i]);
    if (!told.insert(choice).second) continue;
    const Decision& decision = decisions.at(choice);
    out << "bla-sweep: select: " << grid.points[i].name << " and its other seeds: ";
    char score[64];
    std::snprintf(score, sizeof score, "%.6g", decision.score);
    if (decision.trying) {
      out << "trying " << selection.key << " = " << *decision.trying << " beyond the grid: the best so far, "
          << *decision.value << " (" << selection.on << " " << score << ", mean over seeds " << seeds << "), is the "
          << decision.edge << " value tried\n";
    } else if (!decision.ready) {
      out << "held until its " << decision.trials << " trials (seeds " << seeds << ") finish\n";
    } else if (!decision.value) {
      out << "no " << selection.key << " chosen: no value's trials all finished with " << selection.on << "\n";
    } else {
      out << selection.key << " = " << *decision.value << " (" << selection.on << " " << score << ", mean over seeds "
          << seeds << ")"
          << (decision.edge.empty() ? "" : "; the " + decision.edge + " value tried, and extend has none beyond it")
          << "\n";
    }
  }
}

}  // namespace bla::sweep
