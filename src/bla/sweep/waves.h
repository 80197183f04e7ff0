// A sweep with select (selection.h) runs in waves: each wave is at most one
// process per slot (GPU or --jobs), the first of the pending runnable points'
// processes as plan_processes orders them (those that resume a checkpoint
// first, then grid order; ensembles as --ensemble allows). After each wave its
// outcomes decide the choices again and the next wave is planned from the
// points runnable then. A point's held seeds thus run as soon as its choice
// is made, before the trials of the points after it in the grid, and a sweep
// cut short (a device call's time limit) leaves whole points in grid order
// instead of first-stage trials everywhere. On one slot the processes are
// those one batch would run, in another order; on several, a slot whose
// process ends first waits for the rest of its wave.
#pragma once

#include "bla/sweep/grid.h"
#include "bla/sweep/results_csv.h"
#include "bla/sweep/selection.h"

#include <set>
#include <string>
#include <vector>

namespace bla::sweep {

struct Wave {
  // The points the wave's run_points is given, in grid order: the runnable
  // points (runnable_points) and every point stopped for good earlier in
  // this sweep, so that results.csv keeps a row for every run made.
  Grid grid;
  // Its processes, at most one per slot (indices into grid.points); none
  // once every runnable point is done or stopped.
  std::vector<std::vector<size_t>> processes;
  // The pending points of `grid` no process of this wave runs (names).
  std::set<std::string> later;
};

// The next wave. `known` (indexed as `all`): each point's outcome, as found
// on disk (existing_outcome) or from an earlier wave of this sweep; only a
// "pending" point runs, while "done", "stale" and the statuses of a point
// stopped (failed, killed, ...) do not. `resumable` (indexed as `all`): its
// run directory holds a checkpoint.
Wave plan_wave(const Selection& selection, const Grid& all, const std::vector<Stage>& stages,
               const std::vector<PointOutcome>& known, const std::vector<bool>& resumable, size_t slots,
               int ensemble);

}  // namespace bla::sweep
