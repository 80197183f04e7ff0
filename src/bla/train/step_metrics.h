// What the training steps add up between two log lines, kept on the device:
// loss, top-1 hits and scored positions of the updates that were applied,
// the gradient norm, and the non-finite bookkeeping (skipped updates, the
// first bad step). Steps only add to these tensors; the host reads them with
// one copy at a log or checkpoint step (read()), so a step never waits for
// the device. An ensemble (model/ensemble.h) keeps one row of these numbers
// per member: the step's tensors are then (E) instead of scalars.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace bla::train {

// The numbers as the host sees them.
struct StepTotals {
  double loss = 0;     // sum over applied steps of the step's mean loss
  double correct = 0;  // top-1 hits over scored positions of applied steps
  double count = 0;    // scored positions of applied steps
  int64_t steps = 0;   // applied steps since the last reset
  double grad_norm = 0;          // of the last applied step
  int64_t skipped = 0;           // updates cancelled by a non-finite loss or gradient, in total
  int64_t longest_skip_run = 0;  // most consecutive cancelled updates so far
  int64_t first_bad_step = -1;   // 1-based step whose loss or gradient was first not finite, or -1
  double first_bad_loss = 0;     // that step's loss and gradient norm
  double first_bad_grad_norm = 0;
};

class StepMetrics {
 public:
  // `members`: 0 for one model (the step's tensors are scalars), E for an ensemble.
  explicit StepMetrics(const torch::Device& device, int64_t members = 0);

  // Within a step: one micro-batch's mean loss (already divided by the number
  // of micro-batches), hits and scored positions.
  void add_micro(const torch::Tensor& loss, const torch::Tensor& correct, const torch::Tensor& count, double divisor);
  // Ends a step: its gradient norm and `bad` (1 where loss or norm was not
  // finite), and `skip` (1 where the update was cancelled: bad, or a run
  // halted by an earlier bad step).
  void end_step(const torch::Tensor& grad_norm, const torch::Tensor& bad, const torch::Tensor& skip);
  // The step's summed loss so far (for the finiteness check).
  const torch::Tensor& step_loss() const { return step_loss_; }
  // The 1-based index of the step in progress, on the device.
  void set_step(int64_t completed_steps);

  // One device-to-host copy: the first member's numbers, or every member's.
  StepTotals read() const;
  std::vector<StepTotals> read_members() const;
  // Starts a new log window (the totals of the non-finite bookkeeping stay).
  void reset_window();
  // Restores a window saved in a checkpoint (of one member).
  void restore_window(double loss, double correct, double count, int64_t steps, int64_t member = 0);

 private:
  torch::Tensor step_loss_, step_correct_, step_count_;  // the step in progress
  // float64, one row per member: loss, correct, count, steps, grad_norm, skipped, first_bad, bad loss, bad norm, step,
  // current and longest run of cancelled updates
  torch::Tensor values_;
};

}  // namespace bla::train
