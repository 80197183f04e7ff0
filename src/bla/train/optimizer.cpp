#include "bla/train/optimizer.h"

#include "bla/compat.h"
#include "bla/train/schedule.h"

#include <torch/torch.h>

#include <sstream>
#include <type_traits>

namespace bla::train {

namespace {

// torch::optim keys its per-parameter state by the parameter's TensorImpl;
// the key's type changed across LibTorch versions (a string, then the pointer).
template <typename Map>
typename Map::key_type state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream key;  // as LibTorch 1.13 writes it (c10::guts::to_string of the pointer)
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

template <typename Map>
torch::optim::AdamWParamState& adamw_state(Map& state, const torch::Tensor& p) {
  auto key = state_key<Map>(p);
  auto it = state.find(key);
  if (it == state.end()) {
    auto fresh = std::make_unique<torch::optim::AdamWParamState>();
    fresh->step(0);
    fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    it = state.insert({key, std::move(fresh)}).first;
  }
  return static_cast<torch::optim::AdamWParamState&>(*it->second);
}

}  // namespace

Optimizer::Optimizer(torch::nn::Module& model, const config::TrainConfig& train, bool fused) : train_(train) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model.parameters()) {
    parameters_.push_back(p);
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  }
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(train.lr).betas({train.beta1, train.beta2}).eps(train.eps).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(train.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  adamw_ = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(train.lr));
  fused_ = fused && compat::kHasFusedAdamW && !parameters_.empty() && parameters_.front().is_cuda();
  if (fused_) {
    lr_ = torch::full({}, train.lr, parameters_.front().options().dtype(torch::kFloat));
    collect_fused_state();
  }
}

void Optimizer::collect_fused_state() {
  groups_.clear();
  all_steps_.clear();
  auto& state = adamw_->state();
  for (auto& group : adamw_->param_groups()) {
    Group g;
    g.weight_decay = static_cast<const torch::optim::AdamWOptions&>(group.options()).weight_decay();
    for (auto& p : group.params()) {
      auto& s = adamw_state(state, p);
      g.params.push_back(p);
      g.exp_avgs.push_back(s.exp_avg());
      g.exp_avg_sqs.push_back(s.exp_avg_sq());
      g.steps.push_back(torch::full({}, static_cast<double>(s.step()), p.options().dtype(torch::kFloat)));
      all_steps_.push_back(g.steps.back());
    }
    if (!g.params.empty()) groups_.push_back(std::move(g));
  }
}

double Optimizer::learning_rate(int64_t step, int64_t total) const { return train::learning_rate(train_, step, total); }

void Optimizer::set_learning_rate(double lr) {
  for (auto& group : adamw_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  if (fused_) lr_.fill_(lr);
}

void Optimizer::zero_grad() {
  for (auto& p : parameters_) p.mutable_grad() = torch::Tensor();
}

void Optimizer::step(const torch::Tensor& skip, const torch::Tensor& grad_divisor) {
  if (!fused_) {
    if (skip.item<float>() != 0.0f) return;
    if (grad_divisor.defined()) {
      torch::NoGradGuard no_grad;
      for (auto& p : parameters_) {
        if (p.grad().defined()) p.mutable_grad().div_(grad_divisor);
      }
    }
    adamw_->step();
    return;
  }
  compat::foreach_add_(all_steps_, 1 - skip);  // counts advance only on updates
  for (auto& g : groups_) {
    std::vector<torch::Tensor> grads;
    grads.reserve(g.params.size());
    for (auto& p : g.params) {
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      grads.push_back(p.grad());
    }
    compat::fused_adamw_(g.params, grads, g.exp_avgs, g.exp_avg_sqs, g.steps, lr_, train_.beta1, train_.beta2,
                         g.weight_decay, train_.eps, skip, grad_divisor);
  }
}

void Optimizer::before_save() {
  if (!fused_) return;
  auto& state = adamw_->state();
  for (auto& g : groups_) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      adamw_state(state, g.params[i]).step(static_cast<int64_t>(g.steps[i].item<float>()));
    }
  }
}

void Optimizer::after_load() {
  if (fused_) collect_fused_state();
}

Optimizer::ParamState Optimizer::param_state(size_t i) {
  before_save();
  auto& s = adamw_state(adamw_->state(), parameters_.at(i));
  return {s.exp_avg(), s.exp_avg_sq(), s.step()};
}

void Optimizer::set_param_state(size_t i, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq, int64_t step) {
  torch::NoGradGuard no_grad;
  auto& s = adamw_state(adamw_->state(), parameters_.at(i));
  s.exp_avg().copy_(exp_avg);
  s.exp_avg_sq().copy_(exp_avg_sq);
  s.step(step);
}

}  // namespace bla::train
