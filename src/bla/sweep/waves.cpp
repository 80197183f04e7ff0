#include "bla/sweep/waves.h"

#include "bla/sweep/point_runner.h"

namespace bla::sweep {

Wave plan_wave(const Selection& selection, const Grid& all, const std::vector<Stage>& stages,
               const std::vector<PointOutcome>& known, const std::vector<bool>& resumable, size_t slots,
               int ensemble) {
  const Grid runnable = runnable_points(selection, all, stages, known);
  Wave wave;
  wave.grid.columns = all.columns;
  std::vector<size_t> queue;   // indices into wave.grid.points
  std::vector<bool> resumes;   // per entry of queue
  for (size_t i = 0, r = 0; i < all.points.size(); ++i) {
    const bool is_runnable = r < runnable.points.size() && runnable.points[r].name == all.points[i].name;
    if (is_runnable) ++r;
    const std::string& status = known.at(i).status;
    // Stopped earlier in this sweep (the statuses existing_outcome never gives).
    const bool stopped = status != "pending" && status != "done" && status != "stale";
    if (!is_runnable && !stopped) continue;
    if (is_runnable && status == "pending") {
      queue.push_back(wave.grid.points.size());
      resumes.push_back(resumable.at(i));
    }
    wave.grid.points.push_back(all.points[i]);
  }
  auto processes = plan_processes(wave.grid, queue, resumes, ensemble);
  for (size_t p = 0; p < processes.size(); ++p) {
    if (p < slots) {
      wave.processes.push_back(std::move(processes[p]));
    } else {
      for (size_t index : processes[p]) wave.later.insert(wave.grid.points[index].name);
    }
  }
  return wave;
}

}  // namespace bla::sweep
