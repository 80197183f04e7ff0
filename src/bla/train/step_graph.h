// How a training step runs on the device: eagerly, or captured once in a CUDA
// graph after a few eager steps and replayed from then on. The step itself
// (forward, backward, update) is the caller's body; this part owns the
// stream, the device buffers the batches are copied into, the capture and
// its fallback to eager when capture fails (one log line; train.cuda_graph:
// on makes that an error instead).
#pragma once

#include "bla/train/feeder.h"

#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bla::train {

struct StepGraphOptions {
  std::string cuda_graph = "auto";  // auto | on | off
  int64_t eager_steps = 3;          // steps run eagerly before the capture
  int64_t graph_rows = 0;           // scored rows per micro-batch the graph is captured for (the feeder pads to it)
};

class StepGraph {
 public:
  using Body = std::function<void(const std::vector<MicroBatch>&)>;
  using Log = std::function<void(const std::string&)>;
  // `obstacle`: "" where this run may capture its step, else why it cannot.
  StepGraph(const torch::Device& device, StepGraphOptions options, std::string obstacle, Log log);
  ~StepGraph();

  // Whether a run can capture its step: CUDA, the fused optimizer, one
  // process, a CUDA build. "" when it can, else why not.
  static std::string obstacle(const torch::Device& device, bool fused_optimizer, bool distributed);

  // Runs `body` on the batch: copied to the device and run eagerly, or
  // copied into the captured buffers and replayed.
  void run(const StepBatch& batch, const Body& body);
  // "eager", "CUDA graph (captured at step N)", ...
  std::string mode() const;

 private:
  struct Graph;
  std::vector<MicroBatch> to_device(const StepBatch& batch) const;

  torch::Device device_;
  StepGraphOptions options_;
  Log log_;
  int64_t steps_run_ = 0;
  std::unique_ptr<Graph> graph_;
};

}  // namespace bla::train
