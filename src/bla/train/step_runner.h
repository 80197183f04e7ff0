// One optimizer step on the device, with nothing the host waits for: forward
// and backward over the step's micro-batches (the LM head fused with the
// loss), the global gradient norm and clipping as device tensors, the
// non-finite policy as a device flag that cancels the update, the AdamW
// update and the metric sums. On CUDA the whole step is captured once in a
// CUDA graph after a few eager steps and replayed from then on.
#pragma once

#include "bla/model/lm.h"
#include "bla/train/feeder.h"
#include "bla/train/optimizer.h"
#include "bla/train/step_graph.h"
#include "bla/train/step_metrics.h"

#include <torch/types.h>

#include <functional>
#include <string>

namespace bla::dist {
class DataParallel;
}

namespace bla::train {

struct StepOptions {
  bool bf16 = false;                 // CUDA autocast to bf16
  double grad_clip = 1.0;            // 0: no clipping
  bool halt_on_nonfinite = true;     // "stop": after a bad step no update applies (the trainer then stops)
  std::string fused_head = "auto";   // auto (where it pays) | on | off: the LM head fused with cross-entropy (model/head_loss.h)
  std::string cuda_graph = "auto";   // auto | on | off
  int64_t eager_steps = 3;           // steps run eagerly before the capture
  int64_t graph_rows = 0;            // scored rows per micro-batch the graph is captured for (the feeder pads to it)
};

class StepRunner {
 public:
  using Log = std::function<void(const std::string&)>;
  StepRunner(model::LanguageModelImpl& model, Optimizer& optimizer, StepMetrics& metrics, dist::DataParallel& dp,
             const torch::Device& device, StepOptions options, Log log);

  // Whether this run can capture its step (CUDA, fused optimizer, one process,
  // a CUDA build); "" when it can, else why not.
  static std::string graph_obstacle(const torch::Device& device, bool fused_optimizer, bool distributed) {
    return StepGraph::obstacle(device, fused_optimizer, distributed);
  }
  // Runs one optimizer step on `batch` at learning rate `lr`.
  void run(const StepBatch& batch, double lr);
  // "eager", "CUDA graph (captured at step N)", ...
  std::string mode() const { return graph_.mode(); }

 private:
  void body(const std::vector<MicroBatch>& micro);

  model::LanguageModelImpl& model_;
  Optimizer& optimizer_;
  StepMetrics& metrics_;
  dist::DataParallel& dp_;
  torch::Device device_;
  StepOptions options_;
  std::vector<torch::Tensor> parameters_;
  torch::Tensor halted_;  // float32 flag: a bad step happened and the policy is "stop"
  StepGraph graph_;
};

}  // namespace bla::train
