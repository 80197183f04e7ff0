// Learning-rate schedules: linear warm-up, then cosine decay to
// lr * min_lr_ratio, or constant.
#pragma once

#include "bla/config/config.h"

#include <algorithm>
#include <cmath>

namespace bla::train {

// The learning rate for optimizer step `step` (0-based) of `total`.
inline double learning_rate(const config::TrainConfig& t, int64_t step, int64_t total) {
  if (t.warmup_steps > 0 && step < t.warmup_steps) return t.lr * static_cast<double>(step + 1) / t.warmup_steps;
  if (t.schedule == "constant") return t.lr;
  const double span = std::max<int64_t>(1, total - t.warmup_steps);
  const double progress = std::clamp((step - t.warmup_steps) / span, 0.0, 1.0);
  const double floor = t.lr * t.min_lr_ratio;
  return floor + (t.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace bla::train
