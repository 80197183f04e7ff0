// One optimizer step of an ensemble (model/ensemble.h), on the device and
// sync-free like StepRunner's: forward and backward of all members at once
// (the loss is the sum of the members' losses, so each member's gradient is
// its own), then per member the gradient norm, clipping, the non-finite
// policy and the AdamW update (MemberOptimizer), and per-member metric sums.
// Captured in a CUDA graph like the solo step (StepGraph).
#pragma once

#include "bla/model/lm.h"
#include "bla/train/feeder.h"
#include "bla/train/member_optimizer.h"
#include "bla/train/step_graph.h"
#include "bla/train/step_metrics.h"

#include <torch/types.h>

#include <string>
#include <vector>

namespace bla::train {

struct EnsembleStepOptions {
  bool bf16 = false;
  std::vector<double> grad_clips;  // per member; 0: no clipping
  bool halt_on_nonfinite = true;   // "stop": after a member's bad step none of its updates applies
  StepGraphOptions graph;
};

class EnsembleStepRunner {
 public:
  EnsembleStepRunner(model::LanguageModelImpl& ensemble, MemberOptimizer& optimizer, StepMetrics& metrics,
                     const torch::Device& device, EnsembleStepOptions options, StepGraph::Log log);

  // One step on `batch` (the members' micro-batches joined: model/ensemble.h's
  // layout, each member's scored rows the same count) at the members' rates.
  void run(const StepBatch& batch, const std::vector<double>& lrs);
  // From now on member `member` is not updated (early stopping, or its run failed).
  void stop_member(int64_t member);
  std::string mode() const { return graph_.mode(); }

 private:
  void body(const std::vector<MicroBatch>& micro);
  torch::Tensor gradient_norms(const std::vector<torch::Tensor>& grads) const;

  model::LanguageModelImpl& model_;
  MemberOptimizer& optimizer_;
  StepMetrics& metrics_;
  torch::Device device_;
  EnsembleStepOptions options_;
  int64_t members_;
  torch::Tensor clips_;    // (E) float32
  torch::Tensor halted_;   // (E) float32: the member had a bad step and the policy is "stop"
  torch::Tensor stopped_;  // (E) float32: the member is done
  StepGraph graph_;
};

// Joins the members' batches of one step into the ensemble's: inputs stacked
// member after member, each member's scored-row indices shifted to its
// sequences. Every member's micro-batches must have the same number of
// sequences; shorter ones are padded at their end to the longest.
StepBatch join_member_batches(const std::vector<StepBatch>& members, bool pin_memory);

}  // namespace bla::train
