#include "bla/train/step_runner.h"

#include "bla/compat.h"
#include "bla/dist/data_parallel.h"
#include "bla/model/head_loss.h"

#include <torch/torch.h>

namespace bla::train {

StepRunner::StepRunner(model::LanguageModelImpl& model, Optimizer& optimizer, StepMetrics& metrics,
                       dist::DataParallel& dp, const torch::Device& device, StepOptions options, Log log)
    : model_(model),
      optimizer_(optimizer),
      metrics_(metrics),
      dp_(dp),
      device_(device),
      options_(std::move(options)),
      parameters_(optimizer.parameters()),
      halted_(torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(device))),
      graph_(device, StepGraphOptions{options_.cuda_graph, options_.eager_steps, options_.graph_rows},
             options_.cuda_graph == "off" ? "" : graph_obstacle(device, optimizer.fused(), dp.active()), std::move(log)) {}

void StepRunner::body(const std::vector<MicroBatch>& micro) {
  optimizer_.zero_grad();
  const double parts = static_cast<double>(micro.size());
  for (size_t i = 0; i < micro.size(); ++i) {
    const auto& m = micro[i];
    if (options_.bf16) compat::set_cuda_autocast(true, at::kBFloat16);
    auto hidden = model_.hidden(m.inputs);
    auto rows = hidden.reshape({-1, hidden.size(-1)}).index_select(0, m.rows);
    const auto weight = model_.head_weight();
    const bool fuse = options_.fused_head == "on" ||
                      (options_.fused_head == "auto" && model::head_fusion_pays(rows.size(0), weight.size(0)));
    auto head = fuse ? model::head_cross_entropy(rows, weight, m.targets)
                     : model::head_cross_entropy_plain(rows, weight, m.targets);
    if (options_.bf16) compat::set_cuda_autocast(false, at::kBFloat16);
    dp_.begin_micro_step(i + 1 == micro.size());  // dist: only the last micro-step all-reduces
    (head.loss / parts).backward();
    metrics_.add_micro(head.loss, head.correct, head.count, parts);
  }
  dp_.finish_gradients();  // dist: .grad = average over ranks

  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters_) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  torch::Tensor norm;
  if (grads.empty()) {
    norm = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(device_));
  } else if (device_.is_cuda()) {
    norm = torch::stack(at::_foreach_norm(grads, 2)).norm(2);
  } else {  // as torch::nn::utils::clip_grad_norm_ computes it, bit for bit
    std::vector<torch::Tensor> norms;
    for (const auto& g : grads) norms.push_back(g.norm(2));
    norm = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  }
  // Clipping: every gradient times min(1, clip / (norm + 1e-6)), as
  // torch::nn::utils::clip_grad_norm_. The fused optimizer divides by the
  // reciprocal as it reads them instead: one pass over the gradients fewer.
  torch::Tensor grad_divisor;
  if (options_.grad_clip > 0 && !grads.empty()) {
    if (optimizer_.fused()) {
      grad_divisor = torch::clamp((norm + 1e-6) / options_.grad_clip, 1.0);
    } else {
      compat::foreach_mul_(grads, torch::clamp(options_.grad_clip / (norm + 1e-6), c10::nullopt, 1.0));
    }
  }
  auto bad = (metrics_.step_loss().isfinite().logical_not() | norm.isfinite().logical_not()).to(torch::kFloat);
  if (dp_.active()) {  // dist: one rank's bad loss cancels the update everywhere
    dp_.sum_(bad);
    bad = bad.clamp_max(1);
  }
  torch::Tensor skip = bad;
  if (options_.halt_on_nonfinite) {
    halted_.copy_(torch::maximum(halted_, bad));
    skip = halted_;
  }
  optimizer_.step(skip, grad_divisor);
  metrics_.end_step(norm, bad, skip);
}

void StepRunner::run(const StepBatch& batch, double lr) {
  optimizer_.set_learning_rate(lr);
  graph_.run(batch, [this](const std::vector<MicroBatch>& micro) { body(micro); });
}

}  // namespace bla::train
