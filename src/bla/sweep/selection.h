// A sweep in two stages (a sweep file's `select`, sweep_file.h): the trials,
// the points whose run.seed is one of select.seeds, try every value of
// select.key; the other seeds' points are held, and run only at the value the
// trials chose. Points that differ in nothing but select.key and run.seed
// form one choice; it is made once all of its trials are done (or have
// stopped for good: failed, non-finite), from the finished ones: the value
// whose trials' mean of select.on is best, ties to the earlier value in the
// grid. A value some of whose trials did not finish is not chosen.
//
// With select.extend, a choice whose best value is the largest (smallest)
// value tried is not made yet: the trials of the next extension value above
// (below) run first (the extension trials), one value at a time, until the
// best is inside the values tried or the list has none left on that side.
// A value that failed counts as tried, so a rate that diverged bounds the
// search as one that learned less does.
//
// Halves the runs of a 4-rate, 3-seed grid with seeds: [1] (4 trials + 2
// replicates a point instead of 12). scripts/plot_sweep.py makes the same
// choice from results.csv: on the seeds every rate of a point has.
//
// bla-sweep runs such a sweep in waves (waves.h): at most one process per
// slot, the choices made again after each, so that a point's held seeds run
// before the next point's trials and a sweep cut short leaves whole points.
#pragma once

#include "bla/sweep/grid.h"
#include "bla/sweep/results_csv.h"

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace bla::sweep {

// Where a point stands in the stages: a trial of the grid's values, a trial
// of an extension value (runs only when its choice needs it), or held.
enum class Stage { kTrial, kExtension, kHeld };

// The stage of every grid point. Throws config::ConfigError (naming the sweep
// file's select) when a point does not set select.key or run.seed, a seed
// in select.seeds is no point's, or (with extend) a value of the key is not
// a number or an extension value lies among a choice's grid values.
std::vector<Stage> stages_of(const Selection& selection, const Grid& grid, const std::string& file);

// The points to run (outcomes indexed as grid): every trial, each extension
// trial its choice needs now, each held point whose choice is made (all its
// trials done or stopped for good) and is its value, and every point already
// done (skipped, but kept in results.csv). Without a selection, the grid
// itself.
Grid runnable_points(const std::optional<Selection>& selection, const Grid& grid, const std::vector<Stage>& stages,
                     const std::vector<PointOutcome>& outcomes);

// The choices made, one line each ("bla_slots-8: train.lr = 1e-2 (validation_accuracy 0.412 over seeds 1)"),
// the held points still waiting, and the extension values being tried.
void describe_choices(const Selection& selection, const Grid& grid, const std::vector<Stage>& stages,
                      const std::vector<PointOutcome>& outcomes, std::ostream& out);

}  // namespace bla::sweep
