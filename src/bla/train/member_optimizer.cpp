#include "bla/train/member_optimizer.h"

#include "bla/compat.h"
#include "bla/train/schedule.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace bla::train {

MemberOptimizer::MemberOptimizer(torch::nn::Module& ensemble, std::vector<config::TrainConfig> members, bool fused)
    : members_(std::move(members)) {
  const int64_t E = static_cast<int64_t>(members_.size());
  for (auto& p : ensemble.parameters()) {
    if (p.dim() < 1 || p.size(0) != E) {
      throw std::invalid_argument("MemberOptimizer: parameter of shape " + std::to_string(p.dim()) +
                                  " dims has no member dimension of " + std::to_string(E));
    }
    parameters_.push_back(p);
    exp_avgs_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    exp_avg_sqs_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    decayed_.push_back(p.dim() - 1 >= 2);
  }
  host_steps_.assign(static_cast<size_t>(E), 0);
  lrs_.assign(static_cast<size_t>(E), 0.0);
  for (int64_t e = 0; e < E; ++e) lrs_[e] = members_[e].lr;
  fused_ = fused && compat::kHasFusedAdamW && !parameters_.empty() && parameters_.front().is_cuda();
  if (fused_) {
    const auto options = parameters_.front().options().dtype(torch::kFloat);
    steps_ = torch::zeros({E}, options);
    lr_ = torch::tensor(std::vector<float>(lrs_.begin(), lrs_.end()), torch::kFloat).to(options.device());
  }
}

std::vector<double> MemberOptimizer::learning_rates(int64_t step, int64_t total) const {
  std::vector<double> out;
  for (const auto& t : members_) out.push_back(train::learning_rate(t, step, total));
  return out;
}

void MemberOptimizer::set_learning_rates(const std::vector<double>& lrs) {
  for (size_t e = 0; e < lrs.size(); ++e) {
    if (fused_ && lrs[e] != lrs_[e]) lr_.select(0, static_cast<int64_t>(e)).fill_(lrs[e]);
    lrs_[e] = lrs[e];
  }
}

void MemberOptimizer::zero_grad() {
  for (auto& p : parameters_) p.mutable_grad() = torch::Tensor();
}

void MemberOptimizer::step(const torch::Tensor& skip) {
  for (auto& p : parameters_) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
  }
  const int64_t E = members();
  if (fused_) {
    steps_.add_(1 - skip);  // counts advance only on updates
    for (int64_t e = 0; e < E; ++e) {
      const auto& t = members_[e];
      for (bool decay : {true, false}) {
        std::vector<torch::Tensor> params, grads, avgs, sqs, steps;
        for (size_t i = 0; i < parameters_.size(); ++i) {
          if (decayed_[i] != decay) continue;
          params.push_back(parameters_[i].select(0, e));
          grads.push_back(parameters_[i].grad().select(0, e));
          avgs.push_back(exp_avgs_[i].select(0, e));
          sqs.push_back(exp_avg_sqs_[i].select(0, e));
          steps.push_back(steps_.select(0, e));
        }
        if (params.empty()) continue;
        compat::fused_adamw_(params, grads, avgs, sqs, steps, lr_.select(0, e), t.beta1, t.beta2,
                             decay ? t.weight_decay : 0.0, t.eps, skip.select(0, e), torch::Tensor());
      }
    }
    return;
  }
  // torch::optim::AdamW::step on member e's slices, operation for operation.
  auto host_skip = skip.to(torch::kCPU, torch::kFloat);
  torch::NoGradGuard no_grad;
  for (int64_t e = 0; e < E; ++e) {
    if (host_skip[e].item<float>() != 0.0f) continue;
    const auto& t = members_[e];
    const double lr = lrs_[e];
    host_steps_[e] += 1;
    const double bias_correction1 = 1 - std::pow(t.beta1, static_cast<double>(host_steps_[e]));
    const double bias_correction2 = 1 - std::pow(t.beta2, static_cast<double>(host_steps_[e]));
    for (size_t i = 0; i < parameters_.size(); ++i) {
      auto p = parameters_[i].select(0, e);
      auto grad = parameters_[i].grad().select(0, e);
      auto exp_avg = exp_avgs_[i].select(0, e);
      auto exp_avg_sq = exp_avg_sqs_[i].select(0, e);
      const double weight_decay = decayed_[i] ? t.weight_decay : 0.0;
      if (weight_decay != 0) p.mul_(1 - lr * weight_decay);
      exp_avg.mul_(t.beta1).add_(grad, 1 - t.beta1);
      exp_avg_sq.mul_(t.beta2).addcmul_(grad, grad, 1 - t.beta2);
      auto denom = (exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(t.eps);
      p.addcdiv_(exp_avg, denom, -(lr / bias_correction1));
    }
  }
}

void MemberOptimizer::export_member(int64_t member, Optimizer& solo) {
  const int64_t step = fused_ ? static_cast<int64_t>(steps_[member].item<float>()) : host_steps_[member];
  for (size_t i = 0; i < parameters_.size(); ++i) {
    solo.set_param_state(i, exp_avgs_[i].select(0, member), exp_avg_sqs_[i].select(0, member), step);
  }
}

void MemberOptimizer::import_member(int64_t member, Optimizer& solo) {
  torch::NoGradGuard no_grad;
  int64_t step = 0;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    auto s = solo.param_state(i);
    exp_avgs_[i].select(0, member).copy_(s.exp_avg);
    exp_avg_sqs_[i].select(0, member).copy_(s.exp_avg_sq);
    step = s.step;
  }
  host_steps_[member] = step;
  if (fused_) steps_.select(0, member).fill_(static_cast<double>(step));
}

}  // namespace bla::train
