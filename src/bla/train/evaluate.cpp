#include "bla/train/evaluate.h"

#include "bla/compat.h"

#include <torch/torch.h>

#include <numeric>

namespace bla::train {

LossAndLogits supervised_loss(model::LanguageModelImpl& model, const tasks::Batch& batch, const torch::Device& device) {
  auto inputs = batch.inputs.to(device);
  auto targets = batch.targets.to(device);
  auto mask = targets.ne(tasks::kIgnoreIndex);
  auto hidden = model.hidden(inputs);
  auto rows = hidden.index({mask});  // (supervised positions, d_model)
  LossAndLogits out;
  out.logits = model.logits(rows).to(torch::kFloat);
  out.count = rows.size(0);
  out.loss = torch::nn::functional::cross_entropy(out.logits, targets.masked_select(mask));
  return out;
}

std::map<std::string, double> evaluate(model::LanguageModelImpl& model, const tasks::Task& task, tasks::Split split,
                                       const torch::Device& device, const EvalOptions& options) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  int64_t total = task.num_examples(split);
  if (options.max_examples > 0) total = std::min(total, options.max_examples);
  tasks::EvalTotals totals;
  if (options.bf16) compat::set_cuda_autocast(true, at::kBFloat16);
  for (int64_t first = 0; first < total; first += options.batch_size) {
    std::vector<int64_t> indices(static_cast<size_t>(std::min(options.batch_size, total - first)));
    std::iota(indices.begin(), indices.end(), first);
    auto batch = task.batch(split, indices);
    auto result = supervised_loss(model, batch, device);
    if (result.count == 0) continue;
    totals.add(tasks::kLossSum, result.loss.item<double>() * static_cast<double>(result.count));
    totals.add(tasks::kLossPositions, static_cast<double>(result.count));
    task.score(batch, result.logits, totals);
  }
  if (options.bf16) compat::set_cuda_autocast(false, at::kBFloat16);
  model.train(was_training);
  auto metrics = task.metrics(totals);
  const double positions = totals.sums[tasks::kLossPositions];
  metrics["loss"] = positions > 0 ? totals.sums[tasks::kLossSum] / positions : 0.0;
  metrics["examples"] = static_cast<double>(total);
  return metrics;
}

}  // namespace bla::train
