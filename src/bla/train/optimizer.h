// The optimizer and its schedule: AdamW with weight decay on matrices only
// (nanoGPT's rule: norms and other vectors are not decayed), the learning rate
// of train.schedule, and an update that a device flag can cancel.
//
// Two forms of one update. On the CPU (and with LibTorch < 2.4) LibTorch's
// torch::optim::AdamW steps, as it always has. On CUDA, PyTorch's fused
// multi-tensor AdamW (two launches, one per weight-decay group) reads the
// learning rate from a device tensor and leaves everything untouched where
// the skip flag is set, so a step needs no host sync and can be captured in
// a CUDA graph. Both keep their moments in the torch::optim::AdamW object, so
// a checkpoint is the same whichever form wrote it.
#pragma once

#include "bla/config/config.h"

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <memory>
#include <vector>

namespace bla::train {

class Optimizer {
 public:
  // `fused`: use the fused CUDA form where it exists (train.fused_optimizer).
  Optimizer(torch::nn::Module& model, const config::TrainConfig& train, bool fused);

  bool fused() const { return fused_; }
  // The schedule's rate for optimizer step `step` (0-based) of `total`.
  double learning_rate(int64_t step, int64_t total) const;
  // The rate of the next update. Fused: fills a device tensor (call outside
  // a captured graph; the graph reads the tensor).
  void set_learning_rate(double lr);
  // Sets every gradient to none: backward then hands each parameter its
  // gradient instead of adding it to zeros (one float32 add per parameter a
  // step fewer). Called inside the captured step: the gradients made while
  // capturing live in the graph's memory, and every replay rewrites them.
  void zero_grad();
  // One AdamW update. `skip`: a one-element float32 tensor on the
  // parameters' device; where it holds 1 nothing changes (moments and step
  // counts included). The LibTorch form reads it on the host.
  // `grad_divisor`, where defined (a one-element float32 tensor on the
  // parameters' device): the update uses every gradient divided by it, as
  // gradient clipping scales them. The fused form divides as it reads the
  // gradients (one read of them fewer than scaling them first); the
  // LibTorch form divides them first. Both leave them divided, but for a
  // skipped step, which leaves them as they were.
  void step(const torch::Tensor& skip, const torch::Tensor& grad_divisor = torch::Tensor());

  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  // The state checkpoints save and load.
  torch::optim::Optimizer& state() { return *adamw_; }
  const torch::optim::Optimizer& state() const { return *adamw_; }
  // Fused: writes the device step counts into the state before a save, and
  // takes the moments and counts back from it after a load.
  void before_save();
  void after_load();

  // The AdamW state of parameters()[i]: its moments (the live tensors) and
  // step count; and setting it (copies; fused: call after_load() after the last).
  struct ParamState {
    torch::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  ParamState param_state(size_t i);
  void set_param_state(size_t i, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq, int64_t step);

 private:
  struct Group {
    std::vector<torch::Tensor> params, exp_avgs, exp_avg_sqs, steps;
    double weight_decay = 0;
  };
  void collect_fused_state();

  config::TrainConfig train_;
  bool fused_ = false;
  std::vector<torch::Tensor> parameters_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
  std::vector<Group> groups_;
  std::vector<torch::Tensor> all_steps_;
  torch::Tensor lr_;  // fused: the learning rate on the device (float32)
};

}  // namespace bla::train
