// AdamW for an ensemble (model/ensemble.h): every parameter is (E, solo
// shape), and each member has its own learning rate, betas, eps, weight
// decay, step count and skip flag. Member e's update is what the solo
// Optimizer does to member e's slices: on CUDA PyTorch's fused AdamW (one
// multi-tensor launch per member and weight-decay group, its learning rate
// and skip flag read from the device, so a step can be captured in a CUDA
// graph); on the CPU the arithmetic of torch::optim::AdamW on the slices.
// Weight decay applies to matrices only, judged by the solo shape (the
// Optimizer's rule).
#pragma once

#include "bla/config/config.h"
#include "bla/train/optimizer.h"

#include <torch/nn/module.h>

#include <cstdint>
#include <vector>

namespace bla::train {

class MemberOptimizer {
 public:
  // `members`: each member's train section (lr, betas, eps, weight decay, schedule).
  MemberOptimizer(torch::nn::Module& ensemble, std::vector<config::TrainConfig> members, bool fused);

  int64_t members() const { return static_cast<int64_t>(members_.size()); }
  bool fused() const { return fused_; }
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  // Each member's scheduled rate for optimizer step `step` (0-based) of `total`.
  std::vector<double> learning_rates(int64_t step, int64_t total) const;
  // The rates of the next update (fused: fills the device tensor; call outside a captured graph).
  void set_learning_rates(const std::vector<double>& lrs);
  void zero_grad();  // every gradient to none, as Optimizer::zero_grad
  // One update of every member whose `skip` entry ((E) float32 on the
  // parameters' device) is 0; the others are left as they are, moments and
  // step counts included. The CPU form reads `skip` on the host.
  void step(const torch::Tensor& skip);

  // Member `member`'s moments and step count into `solo` (an Optimizer of a
  // solo model of the same architecture), for its checkpoint; and back.
  void export_member(int64_t member, Optimizer& solo);
  void import_member(int64_t member, Optimizer& solo);

 private:
  std::vector<config::TrainConfig> members_;
  bool fused_ = false;
  std::vector<torch::Tensor> parameters_, exp_avgs_, exp_avg_sqs_;
  std::vector<bool> decayed_;
  std::vector<int64_t> host_steps_;  // CPU form
  std::vector<double> lrs_;
  torch::Tensor steps_, lr_;  // fused form: (E) float32 on the device
};

}  // namespace bla::train
