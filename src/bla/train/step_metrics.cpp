#include "bla/train/step_metrics.h"

#include <torch/torch.h>

#include <algorithm>

namespace bla::train {

namespace {
enum Slot : int64_t {
  kLoss, kCorrect, kCount, kSteps, kGradNorm, kSkipped, kFirstBad, kBadLoss, kBadNorm, kStep, kSkipRun, kLongestSkipRun,
  kSlots
};
}

StepMetrics::StepMetrics(const torch::Device& device, int64_t members) {
  auto options = torch::TensorOptions().dtype(torch::kDouble).device(device);
  values_ = torch::zeros({std::max<int64_t>(members, 1), kSlots}, options);
  values_.select(1, kFirstBad).fill_(-1);
  const auto step_shape = members > 0 ? std::vector<int64_t>{members} : std::vector<int64_t>{};
  step_loss_ = torch::zeros(step_shape, options);
  step_correct_ = torch::zeros(step_shape, options);
  step_count_ = torch::zeros(step_shape, options);
}

void StepMetrics::set_step(int64_t completed_steps) {
  values_.select(1, kStep).fill_(static_cast<double>(completed_steps));
}

void StepMetrics::add_micro(const torch::Tensor& loss, const torch::Tensor& correct, const torch::Tensor& count,
                            double divisor) {
  step_loss_.add_(loss.detach().to(torch::kDouble) / divisor);
  step_correct_.add_(correct);
  step_count_.add_(count);
}

void StepMetrics::end_step(const torch::Tensor& grad_norm, const torch::Tensor& bad, const torch::Tensor& skip) {
  auto v = values_;
  const auto slot = [&v](int64_t k) { return v.select(1, k); };
  auto step = slot(kStep);
  step.add_(1);
  const auto norm = grad_norm.detach().to(torch::kDouble).expand_as(step);
  const auto applied = (1 - skip.to(torch::kDouble)).expand_as(step);
  const auto loss = step_loss_.expand_as(step);
  // An applied step adds its numbers; a cancelled one adds zeros (torch::where keeps NaN out of the sums).
  auto contribution = torch::stack({torch::where(applied > 0, loss, torch::zeros_like(loss)),
                                    step_correct_.expand_as(step) * applied, step_count_.expand_as(step) * applied,
                                    applied},
                                   1);
  v.narrow(1, kLoss, 4).add_(contribution);
  slot(kGradNorm).copy_(torch::where(applied > 0, norm, slot(kGradNorm)));
  slot(kSkipped).add_(1 - applied);
  slot(kSkipRun).copy_((slot(kSkipRun) + 1) * (1 - applied));
  slot(kLongestSkipRun).copy_(torch::maximum(slot(kLongestSkipRun), slot(kSkipRun)));
  const auto first = (slot(kFirstBad) < 0) & (bad.expand_as(step) > 0);
  slot(kBadLoss).copy_(torch::where(first, loss, slot(kBadLoss)));
  slot(kBadNorm).copy_(torch::where(first, norm, slot(kBadNorm)));
  slot(kFirstBad).copy_(torch::where(first, step, slot(kFirstBad)));
  step_loss_.zero_();
  step_correct_.zero_();
  step_count_.zero_();
}

std::vector<StepTotals> StepMetrics::read_members() const {
  auto host = values_.to(torch::kCPU);
  auto a = host.accessor<double, 2>();
  std::vector<StepTotals> out;
  for (int64_t m = 0; m < host.size(0); ++m) {
    StepTotals t;
    t.loss = a[m][kLoss];
    t.correct = a[m][kCorrect];
    t.count = a[m][kCount];
    t.steps = static_cast<int64_t>(a[m][kSteps]);
    t.grad_norm = a[m][kGradNorm];
    t.skipped = static_cast<int64_t>(a[m][kSkipped]);
    t.longest_skip_run = static_cast<int64_t>(a[m][kLongestSkipRun]);
    t.first_bad_step = static_cast<int64_t>(a[m][kFirstBad]);
    t.first_bad_loss = a[m][kBadLoss];
    t.first_bad_grad_norm = a[m][kBadNorm];
    out.push_back(t);
  }
  return out;
}

StepTotals StepMetrics::read() const { return read_members().front(); }

void StepMetrics::reset_window() { values_.narrow(1, kLoss, 4).zero_(); }

void StepMetrics::restore_window(double loss, double correct, double count, int64_t steps, int64_t member) {
  auto host = torch::tensor({loss, correct, count, static_cast<double>(steps)}, torch::kDouble);
  values_.select(0, member).narrow(0, kLoss, 4).copy_(host);
}

}  // namespace bla::train
