#include "bla/train/ensemble_step.h"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

#include "bla/compat.h"
#include "bla/model/head_loss.h"

namespace bla::train {

EnsembleStepRunner::EnsembleStepRunner(model::LanguageModelImpl& ensemble, MemberOptimizer& optimizer,
                                       StepMetrics& metrics, const torch::Device& device, EnsembleStepOptions options,
                                       StepGraph::Log log)
    : model_(ensemble),
      optimizer_(optimizer),
      metrics_(metrics),
      device_(device),
      options_(std::move(options)),
      members_(optimizer.members()),
      clips_(torch::tensor(std::vector<float>(options_.grad_clips.begin(), options_.grad_clips.end()), torch::kFloat)
                 .to(device)),
      halted_(torch::zeros({members_}, torch::TensorOptions().dtype(torch::kFloat).device(device))),
      stopped_(torch::zeros_like(halted_)),
      graph_(device, options_.graph,
             options_.graph.cuda_graph == "off" ? "" : StepGraph::obstacle(device, optimizer.fused(), false),
             std::move(log)) {
  if (static_cast<int64_t>(options_.grad_clips.size()) != members_) {
    throw std::invalid_argument("EnsembleStepRunner: one grad_clip per member expected");
  }
}

void EnsembleStepRunner::stop_member(int64_t member) { stopped_.select(0, member).fill_(1.0); }

torch::Tensor EnsembleStepRunner::gradient_norms(const std::vector<torch::Tensor>& grads) const {
  const int64_t E = members_;
  if (grads.empty()) return torch::zeros({E}, torch::TensorOptions().dtype(torch::kFloat).device(device_));
  if (device_.is_cuda()) {  // one multi-tensor launch over every member's slice of every gradient
    std::vector<torch::Tensor> slices;
    for (const auto& g : grads) {
      for (int64_t e = 0; e < E; ++e) slices.push_back(g.select(0, e));
    }
    auto norms = torch::stack(at::_foreach_norm(slices, 2)).view({static_cast<int64_t>(grads.size()), E});
    return norms.norm(2, 0);
  }
  // CPU: per member exactly as the solo step computes it (torch::nn::utils::clip_grad_norm_'s arithmetic).
  std::vector<torch::Tensor> per_member;
  for (int64_t e = 0; e < E; ++e) {
    std::vector<torch::Tensor> norms;
    for (const auto& g : grads) norms.push_back(g.select(0, e).norm(2));
    per_member.push_back(norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2));
  }
  return torch::stack(per_member);
}

void EnsembleStepRunner::body(const std::vector<MicroBatch>& micro) {
  const int64_t E = members_;
  optimizer_.zero_grad();
  const double parts = static_cast<double>(micro.size());
  for (const auto& m : micro) {
    if (options_.bf16) compat::set_cuda_autocast(true, at::kBFloat16);
    auto hidden = model_.hidden(m.inputs);  // (E*B, T, d)
    auto rows = hidden.reshape({-1, hidden.size(-1)}).index_select(0, m.rows).view({E, -1, hidden.size(-1)});
    auto head = model::head_cross_entropy_members(rows, model_.head_weight(), m.targets.view({E, -1}));
    if (options_.bf16) compat::set_cuda_autocast(false, at::kBFloat16);
    (head.loss.sum() / parts).backward();
    metrics_.add_micro(head.loss, head.correct, head.count, parts);
  }
  std::vector<torch::Tensor> grads;
  for (const auto& p : optimizer_.parameters()) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  auto norm = gradient_norms(grads);  // (E)
  if (!grads.empty()) {
    // As the solo step: clip / (norm + 1e-6), at most 1; members with grad_clip 0 are not clipped.
    auto factor = ((norm + 1e-6).reciprocal() * clips_).clamp_max(1.0);
    factor = torch::where(clips_ > 0, factor, torch::ones_like(factor));
    for (auto& g : grads) {
      std::vector<int64_t> shape(static_cast<size_t>(g.dim()), 1);
      shape[0] = E;
      g.mul_(factor.view(shape));
    }
  }
  auto bad = (metrics_.step_loss().isfinite().logical_not() | norm.isfinite().logical_not()).to(torch::kFloat);
  torch::Tensor skip = bad;
  if (options_.halt_on_nonfinite) {
    halted_.copy_(torch::maximum(halted_, bad));
    skip = halted_;
  }
  skip = torch::maximum(skip, stopped_);
  optimizer_.step(skip);
  metrics_.end_step(norm, bad, skip);
}

void EnsembleStepRunner::run(const StepBatch& batch, const std::vector<double>& lrs) {
  optimizer_.set_learning_rates(lrs);
  graph_.run(batch, [this](const std::vector<MicroBatch>& micro) { body(micro); });
}

StepBatch join_member_batches(const std::vector<StepBatch>& members, bool pin_memory) {
  StepBatch out;
  const size_t parts = members.front().micro.size();
  for (size_t i = 0; i < parts; ++i) {
    // Tasks whose rows pad to the longest in their batch (RegBench) give the
    // members different lengths: each is padded to the longest (pad_length).
    int64_t length = 0;
    for (const auto& member : members) length = std::max(length, member.micro.at(i).inputs.size(1));
    std::vector<torch::Tensor> inputs, rows, targets;
    int64_t offset = 0;
    for (const auto& member : members) {
      const MicroBatch m = pad_length(member.micro.at(i), length);
      inputs.push_back(m.inputs);
      rows.push_back(m.rows + offset);
      targets.push_back(m.targets);
      offset += m.inputs.numel();
    }
    MicroBatch joined{torch::cat(inputs), torch::cat(rows), torch::cat(targets)};
    if (pin_memory) joined = {joined.inputs.pin_memory(), joined.rows.pin_memory(), joined.targets.pin_memory()};
    out.micro.push_back(std::move(joined));
  }
  return out;
}

}  // namespace bla::train
