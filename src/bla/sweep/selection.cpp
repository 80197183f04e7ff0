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
};

struct Decision {
  bool ready = true;                   // every trial settled
  std::optional<std::string> value;    // the choice, when one could be made
  double score = 0;
  size_t trials = 0;
};

std::map<std::string, Decision> decide(const Selection& selection, const Grid& grid, const std::vector<Stage>& stages,
                                       const std::vector<PointOutcome>& outcomes) {
  std::map<std::string, std::map<std::string, Candidate>> candidates;
  std::map<std::string, Decision> decisions;
  for (size_t i = 0; i < grid.points.size(); ++i) {
    const Point& point = grid.points[i];
    const std::string choice = choice_of(selection, grid, point);
    auto& decision = decisions[choice];
    if (stages[i] != Stage::kTrial) continue;
    const PointOutcome& outcome = outcomes.at(i);
    const std::string value = point.value(selection.key);
    Candidate& candidate = candidates[choice].try_emplace(value, Candidate{value, i, {}, true}).first->second;
    decision.trials += 1;
    if (!settled(outcome)) decision.ready = false;
    const auto score = outcome.status == "done" ? score_of(selection, outcome.summary) : std::nullopt;
    if (score) candidate.scores.push_back(*score);
    else candidate.complete = false;
  }
  for (auto& [choice, decision] : decisions) {
    if (!decision.ready) continue;
    const bool lower = lower_is_better(selection.on);
    const Candidate* best = nullptr;
    double best_score = 0;
    for (const auto& entry : candidates[choice]) {
      const Candidate& candidate = entry.second;
      if (!candidate.complete || candidate.scores.empty()) continue;
      double sum = 0;
      for (double s : candidate.scores) sum += s;
      const double mean = sum / static_cast<double>(candidate.scores.size());
      const bool better = best == nullptr || (lower ? mean < best_score : mean > best_score) ||
                          (mean == best_score && candidate.first_index < best->first_index);
      if (better) {
        best = &candidate;
        best_score = mean;
      }
    }
    if (best != nullptr) {
      decision.value = best->value;
      decision.score = best_score;
    }
  }
  return decisions;
}

// The value each held point's choice made; nullopt while a trial is pending
// or running, or when no value's trials all finished.
std::vector<std::optional<std::string>> chosen_values(const Selection& selection, const Grid& grid,
                                                      const std::vector<Stage>& stages,
                                                      const std::vector<PointOutcome>& outcomes) {
  const auto decisions = decide(selection, grid, stages, outcomes);
  std::vector<std::optional<std::string>> values;
  for (size_t i = 0; i < grid.points.size(); ++i) {
    if (stages[i] != Stage::kHeld) continue;
    values.push_back(decisions.at(choice_of(selection, grid, grid.points[i])).value);
  }
  return values;
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
    stages.push_back(trial ? Stage::kTrial : Stage::kHeld);
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
  const auto values = chosen_values(*selection, grid, stages, outcomes);
  Grid runnable{grid.columns, {}};
  size_t held = 0;
  for (size_t i = 0; i < grid.points.size(); ++i) {
    const Point& point = grid.points[i];
    if (stages[i] == Stage::kTrial) {
      runnable.points.push_back(point);
      continue;
    }
    const auto& value = values[held++];
    // A held point already done stays in (it is skipped), so results.csv keeps every finished run.
    if ((value && *value == point.value(selection->key)) || outcomes.at(i).status == "done")
      runnable.points.push_back(point);
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
    if (!decision.ready) {
      out << "held until its " << decision.trials << " trials (seeds " << seeds << ") finish\n";
    } else if (!decision.value) {
      out << "no " << selection.key << " chosen: no value's trials all finished with " << selection.on << "\n";
    } else {
      char score[64];
      std::snprintf(score, sizeof score, "%.6g", decision.score);
      out << selection.key << " = " << *decision.value << " (" << selection.on << " " << score << ", mean over seeds "
          << seeds << ")\n";
    }
  }
}

}  // namespace bla::sweep
