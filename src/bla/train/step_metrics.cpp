#include "bla/train/step_metrics.h"

#include <torch/torch.h>

namespace bla::train {

namespace {
enum Slot : int64_t {
  kLoss, kCorrect, kCount, kSteps, kGradNorm, kSkipped, kFirstBad, kBadLoss, kBadNorm, kStep, kSkipRun, kLongestSkipRun,
  kSlots
};
}

StepMetrics::StepMetrics(const torch::Device& device) {
  auto options = torch::TensorOptions().dtype(torch::kDouble).device(device);
  values_ = torch::zeros({kSlots}, options);
  values_[kFirstBad].fill_(-1);
  step_loss_ = torch::zeros({}, options);
  step_correct_ = torch::zeros({}, options);
  step_count_ = torch::zeros({}, options);
}

void StepMetrics::set_step(int64_t completed_steps) { values_[kStep].fill_(static_cast<double>(completed_steps)); }

void StepMetrics::add_micro(const torch::Tensor& loss, const torch::Tensor& correct, const torch::Tensor& count,
                            double divisor) {
  step_loss_.add_(loss.detach().to(torch::kDouble) / divisor);
  step_correct_.add_(correct);
  step_count_.add_(count);
}

void StepMetrics::end_step(const torch::Tensor& grad_norm, const torch::Tensor& bad, const torch::Tensor& skip) {
  auto v = values_;
  auto step = v[kStep];
  step.add_(1);
  const auto norm = grad_norm.detach().to(torch::kDouble);
  const auto applied = 1 - skip.to(torch::kDouble);
  // An applied step adds its numbers; a cancelled one adds zeros (torch::where keeps NaN out of the sums).
  auto contribution = torch::stack({torch::where(applied > 0, step_loss_, torch::zeros_like(step_loss_)),
                                    step_correct_ * applied, step_count_ * applied, applied});
  v.narrow(0, kLoss, 4).add_(contribution);
  v[kGradNorm].copy_(torch::where(applied > 0, norm, v[kGradNorm]));
  v[kSkipped].add_(1 - applied);
  v[kSkipRun].copy_((v[kSkipRun] + 1) * (1 - applied));
  v[kLongestSkipRun].copy_(torch::maximum(v[kLongestSkipRun], v[kSkipRun]));
  const auto first = (v[kFirstBad] < 0) & (bad > 0);
  v[kBadLoss].copy_(torch::where(first, step_loss_, v[kBadLoss]));
  v[kBadNorm].copy_(torch::where(first, norm, v[kBadNorm]));
  v[kFirstBad].copy_(torch::where(first, step, v[kFirstBad]));
  step_loss_.zero_();
  step_correct_.zero_();
  step_count_.zero_();
}

StepTotals StepMetrics::read() const {
  auto host = values_.to(torch::kCPU);
  auto a = host.accessor<double, 1>();
  StepTotals t;
  t.loss = a[kLoss];
  t.correct = a[kCorrect];
  t.count = a[kCount];
  t.steps = static_cast<int64_t>(a[kSteps]);
  t.grad_norm = a[kGradNorm];
  t.skipped = static_cast<int64_t>(a[kSkipped]);
  t.longest_skip_run = static_cast<int64_t>(a[kLongestSkipRun]);
  t.first_bad_step = static_cast<int64_t>(a[kFirstBad]);
  t.first_bad_loss = a[kBadLoss];
  t.first_bad_grad_norm = a[kBadNorm];
  return t;
}

void StepMetrics::reset_window() { values_.narrow(0, kLoss, 4).zero_(); }

void StepMetrics::restore_window(double loss, double correct, double count, int64_t steps) {
  auto host = torch::tensor({loss, correct, count, static_cast<double>(steps)}, torch::kDouble);
  values_.narrow(0, kLoss, 4).copy_(host);
}

}  // namespace bla::train
