#include "bla/dist/grad_sync.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/torch.h>

#include <chrono>
#include <stdexcept>
#include <string>

namespace bla::dist {

GradSync::GradSync(std::vector<at::Tensor> parameters, ProcessGroup& group, double bucket_mb) : group_(group) {
  if (!(bucket_mb > 0)) throw std::invalid_argument("train.bucket_mb must be > 0");
  const double cap_bytes = bucket_mb * 1024.0 * 1024.0;
  // Reverse registration order: the output end of the model gets its
  // gradients first in backward, so its bucket is ready first.
  double bucket_bytes = 0;
  for (int64_t index = static_cast<int64_t>(parameters.size()) - 1; index >= 0; --index) {
    const at::Tensor& p = parameters[static_cast<size_t>(index)];
    if (!p.requires_grad()) continue;
    const double bytes = static_cast<double>(p.numel() * p.element_size());
    bool fresh = buckets_.empty();
    if (!fresh) {
      const auto& first = slots_[static_cast<size_t>(buckets_.back().slots.front())].parameter;
      fresh = bucket_bytes + bytes > cap_bytes || first.scalar_type() != p.scalar_type() ||
              first.device() != p.device();
    }
    if (fresh) {
      buckets_.emplace_back();
      bucket_bytes = 0;
    }
    Slot slot;
    slot.parameter = p;
    slot.index = index;
    slot.bucket = static_cast<int64_t>(buckets_.size()) - 1;
    slot.offset = 0;
    for (int64_t s : buckets_.back().slots) slot.offset += slots_[static_cast<size_t>(s)].parameter.numel();
    buckets_.back().slots.push_back(static_cast<int64_t>(slots_.size()));
    slots_.push_back(slot);
    bucket_bytes += bytes;
  }
  for (auto& bucket : buckets_) {
    const auto& first = slots_[static_cast<size_t>(bucket.slots.front())].parameter;
    int64_t numel = 0;
    for (int64_t s : bucket.slots) numel += slots_[static_cast<size_t>(s)].parameter.numel();
    bucket.flat = torch::zeros({numel}, first.options().requires_grad(false));
    bucket.waiting = static_cast<int64_t>(bucket.slots.size());
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    const auto index = static_cast<int64_t>(i);
    slots_[i].hook = slots_[i].parameter.register_hook([this, index](const at::Tensor& grad) { on_gradient(index, grad); });
  }
}

GradSync::~GradSync() {
  for (auto& slot : slots_) {
    try {
      slot.parameter.remove_hook(slot.hook);
    } catch (...) {
      // The parameter may already be gone with its model: nothing to remove.
    }
  }
}

std::vector<std::vector<int64_t>> GradSync::bucket_layout() const {
  std::vector<std::vector<int64_t>> layout;
  for (const auto& bucket : buckets_) {
    layout.emplace_back();
    for (int64_t s : bucket.slots) layout.back().push_back(slots_[static_cast<size_t>(s)].index);
  }
  return layout;
}

at::Tensor GradSync::slot_view(const Slot& slot) const {
  return buckets_[static_cast<size_t>(slot.bucket)].flat.narrow(0, slot.offset, slot.parameter.numel())
      .view(slot.parameter.sizes());
}

void GradSync::begin_micro_step(bool last) {
  std::lock_guard<std::mutex> lock(mutex_);
  communicate_ = last;
}

void GradSync::on_gradient(int64_t index, const at::Tensor& grad) {
  if (!communicate_) return;  // a non-final micro-step: accumulate locally only
  std::lock_guard<std::mutex> lock(mutex_);
  torch::NoGradGuard no_grad;
  Slot& slot = slots_[static_cast<size_t>(index)];
  Bucket& bucket = buckets_[static_cast<size_t>(slot.bucket)];
  if (bucket.launched) {
    throw std::logic_error("GradSync: a gradient arrived for a parameter whose bucket was already all-reduced "
                           "(a parameter used in two backward passes of one micro-step is not supported)");
  }
  at::Tensor view = slot_view(slot);
  if (slot.ready) {
    view.add_(grad);  // a second contribution in the same backward
    return;
  }
  // The hook runs before the engine accumulates `grad` into .grad, which
  // still holds the earlier micro-steps' sum.
  const at::Tensor& earlier = slot.parameter.grad();
  if (earlier.defined()) {
    torch::add_out(view, earlier, grad);
  } else {
    view.copy_(grad);
  }
  slot.ready = true;
  bucket.waiting -= 1;
  launch_ready_buckets();
}

void GradSync::launch_ready_buckets() {
  while (next_launch_ < num_buckets() && buckets_[static_cast<size_t>(next_launch_)].waiting == 0) {
    launch(buckets_[static_cast<size_t>(next_launch_)]);
    next_launch_ += 1;
  }
}

void GradSync::launch(Bucket& bucket) {
  // Averaging = summing gradients pre-divided by the number of ranks.
  bucket.flat.div_(static_cast<double>(group_.size()));
  bucket.work = group_.all_reduce_sum_async(bucket.flat);
  bucket.launched = true;
}

void GradSync::finish() {
  using Clock = std::chrono::steady_clock;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!communicate_) throw std::logic_error("GradSync::finish() called without begin_micro_step(true)");
    torch::NoGradGuard no_grad;
    // Parameters whose hook did not fire in the last backward (unused this
    // step, or used only in earlier micro-steps): their .grad so far, or zeros.
    for (int64_t b = next_launch_; b < num_buckets(); ++b) {
      Bucket& bucket = buckets_[static_cast<size_t>(b)];
      for (int64_t s : bucket.slots) {
        Slot& slot = slots_[static_cast<size_t>(s)];
        if (slot.ready) continue;
        const at::Tensor& grad = slot.parameter.grad();
        if (grad.defined()) {
          slot_view(slot).copy_(grad);
        } else {
          slot_view(slot).zero_();
        }
        slot.ready = true;
      }
      bucket.waiting = 0;
    }
    launch_ready_buckets();
  }
  // With timing on CUDA: wait for the compute stream (backward done), then
  // time until that stream may go on past the all-reduces: the part of the
  // communication that backward did not hide.
  const c10::Device device = group_.device();
  auto sync_compute_stream = [&] {
    if (synchronize_for_timing_ && device.is_cuda()) {
      c10::impl::getDeviceGuardImpl(device.type())->getStream(device).synchronize();
    }
  };
  sync_compute_stream();
  const auto started = Clock::now();
  for (auto& bucket : buckets_) bucket.work.wait();
  sync_compute_stream();
  wait_seconds_ += std::chrono::duration<double>(Clock::now() - started).count();

  torch::NoGradGuard no_grad;
  for (auto& slot : slots_) {
    at::Tensor averaged = slot_view(slot);
    if (slot.parameter.grad().defined()) {
      slot.parameter.mutable_grad().copy_(averaged);
    } else {
      slot.parameter.mutable_grad() = averaged.clone();
    }
    slot.ready = false;
  }
  for (auto& bucket : buckets_) {
    bucket.waiting = static_cast<int64_t>(bucket.slots.size());
    bucket.launched = false;
  }
  next_launch_ = 0;
  communicate_ = false;
}

}  // namespace bla::dist
