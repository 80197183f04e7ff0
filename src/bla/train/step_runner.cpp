#include "bla/train/step_runner.h"

#include "bla/compat.h"
#include "bla/dist/data_parallel.h"
#include "bla/model/head_loss.h"

#include <torch/torch.h>

#ifdef BLA_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

#include <cstdlib>
#include <limits>

namespace bla::train {

// The captured step: static device buffers the batches are copied into, and
// the graph that reads them. With CUDA, the run's work goes to a stream of its
// own (graphs are captured on a non-default stream; warm-up, capture and
// replay share it).
struct StepRunner::Graph {
  enum class State { kWarming, kCaptured, kOff };
  State state = State::kOff;
  std::string why_off;
  int64_t captured_at = 0;
  std::vector<MicroBatch> buffers;
#ifdef BLA_HAVE_CUDA_KERNELS
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  std::unique_ptr<c10::cuda::CUDAStreamGuard> stream;
#endif
};

std::string StepRunner::graph_obstacle(const torch::Device& device, bool fused_optimizer, bool distributed) {
#ifndef BLA_HAVE_CUDA_KERNELS
  (void)fused_optimizer;
  (void)distributed;
  return device.is_cuda() ? "this build has no CUDA graph support" : "the run is on the CPU";
#else
  if (!device.is_cuda()) return "the run is on the CPU";
  if (!fused_optimizer) return "the optimizer is not the fused one (train.fused_optimizer: off)";
  if (distributed) return "several processes train together (gradient all-reduce is not captured)";
  return "";
#endif
}

StepRunner::StepRunner(model::LanguageModelImpl& model, Optimizer& optimizer, StepMetrics& metrics,
                       dist::DataParallel& dp, const torch::Device& device, StepOptions options, Log log)
    : model_(model),
      optimizer_(optimizer),
      metrics_(metrics),
      dp_(dp),
      device_(device),
      options_(std::move(options)),
      log_(std::move(log)),
      parameters_(optimizer.parameters()) {
  halted_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(device));
  graph_ = std::make_unique<Graph>();
  if (options_.cuda_graph != "off") {
    graph_->why_off = graph_obstacle(device, optimizer.fused(), dp.active());
    if (graph_->why_off.empty() && options_.graph_rows <= 0) graph_->why_off = "the scored rows per batch are not fixed";
    if (graph_->why_off.empty()) {
      graph_->state = Graph::State::kWarming;
#ifdef BLA_HAVE_CUDA_KERNELS
      // The new stream must not overtake what the default stream still does (parameters copied in, state made).
      at::cuda::getCurrentCUDAStream(device.index()).synchronize();
      graph_->stream = std::make_unique<c10::cuda::CUDAStreamGuard>(at::cuda::getStreamFromPool(false, device.index()));
#endif
    } else if (device.is_cuda()) {
      log_("training step: eager, no CUDA graph (" + graph_->why_off + ")");
    }
  }
}

StepRunner::~StepRunner() {
#ifdef BLA_HAVE_CUDA_KERNELS
  // Tensors made before the run (the model) are freed on the default stream's terms: finish the run's stream first.
  if (graph_ && graph_->stream) at::cuda::getCurrentCUDAStream(device_.index()).synchronize();
#endif
}

std::string StepRunner::mode() const {
  switch (graph_->state) {
    case Graph::State::kCaptured:
      return "CUDA graph (captured at step " + std::to_string(graph_->captured_at) + ")";
    case Graph::State::kWarming:
      return "eager (CUDA graph after " + std::to_string(options_.eager_steps) + " steps)";
    default:
      return graph_->why_off.empty() ? "eager" : "eager (" + graph_->why_off + ")";
  }
}

std::vector<MicroBatch> StepRunner::to_device(const StepBatch& batch) const {
  std::vector<MicroBatch> out;
  for (const auto& m : batch.micro) {
    out.push_back({m.inputs.to(device_, /*non_blocking=*/true), m.rows.to(device_, true), m.targets.to(device_, true)});
  }
  return out;
}

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
    auto head = fuse
                    ? model::head_cross_entropy(rows, weight, m.targets)
                    : model::head_cross_entropy_reference(rows, weight, m.targets);
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
  if (options_.grad_clip > 0 && !grads.empty()) {
    compat::foreach_mul_(grads, torch::clamp(options_.grad_clip / (norm + 1e-6), c10::nullopt, 1.0));
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
  optimizer_.step(skip);
  metrics_.end_step(norm, bad, skip);
}

void StepRunner::run(const StepBatch& batch, double lr) {
  optimizer_.set_learning_rate(lr);
  steps_run_ += 1;
#ifdef BLA_HAVE_CUDA_KERNELS
  auto& g = *graph_;
  if (g.state == Graph::State::kCaptured) {
    for (size_t i = 0; i < batch.micro.size(); ++i) {
      g.buffers[i].inputs.copy_(batch.micro[i].inputs, /*non_blocking=*/true);
      g.buffers[i].rows.copy_(batch.micro[i].rows, true);
      g.buffers[i].targets.copy_(batch.micro[i].targets, true);
    }
    g.graph->replay();
    return;
  }
  if (g.state == Graph::State::kWarming && steps_run_ > options_.eager_steps) {
    g.buffers = to_device(batch);
    g.graph = std::make_unique<at::cuda::CUDAGraph>();
    compat::set_autocast_cache(false);
    try {
      g.graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      try {
        body(g.buffers);
      } catch (...) {
        try {
          g.graph->capture_end();
        } catch (...) {
        }
        throw;
      }
      g.graph->capture_end();
      compat::set_autocast_cache(true);
      g.state = Graph::State::kCaptured;
      g.captured_at = steps_run_;
      log_("training step: captured in a CUDA graph at step " + std::to_string(steps_run_) + ", replayed from now on");
      g.graph->replay();
      return;
    } catch (const std::exception& e) {
      compat::set_autocast_cache(true);
      compat::set_cuda_autocast(false, at::kBFloat16);
      (void)cudaGetLastError();
      g.graph.reset();
      g.buffers.clear();
      g.state = Graph::State::kOff;
      std::string what = e.what();
      g.why_off = "capture failed: " + what.substr(0, what.find('\n'));
      log_("training step: eager from now on, the CUDA graph " + g.why_off);
      if (options_.cuda_graph == "on") throw std::runtime_error("train.cuda_graph is on but the " + g.why_off);
    }
  }
#endif
  body(to_device(batch));
}

}  // namespace bla::train
