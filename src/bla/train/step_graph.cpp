#include "bla/train/step_graph.h"

#include "bla/compat.h"

#include <torch/torch.h>

#ifdef BLA_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

#include <stdexcept>
#include <string>

namespace bla::train {

// The captured step: static device buffers the batches are copied into, and
// the graph that reads them. With CUDA, the run's work goes to a stream of its
// own (graphs are captured on a non-default stream; warm-up, capture and
// replay share it).
struct StepGraph::Graph {
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

std::string StepGraph::obstacle(const torch::Device& device, bool fused_optimizer, bool distributed) {
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

StepGraph::StepGraph(const torch::Device& device, StepGraphOptions options, std::string obstacle, Log log)
    : device_(device), options_(std::move(options)), log_(std::move(log)) {
  graph_ = std::make_unique<Graph>();
  if (options_.cuda_graph == "off") return;
  graph_->why_off = std::move(obstacle);
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

StepGraph::~StepGraph() {
#ifdef BLA_HAVE_CUDA_KERNELS
  // Tensors made before the run (the model) are freed on the default stream's terms: finish the run's stream first.
  if (graph_ && graph_->stream) at::cuda::getCurrentCUDAStream(device_.index()).synchronize();
#endif
}

std::string StepGraph::mode() const {
  switch (graph_->state) {
    case Graph::State::kCaptured:
      return "CUDA graph (captured at step " + std::to_string(graph_->captured_at) + ")";
    case Graph::State::kWarming:
      return "eager (CUDA graph after " + std::to_string(options_.eager_steps) + " steps)";
    default:
      return graph_->why_off.empty() ? "eager" : "eager (" + graph_->why_off + ")";
  }
}

std::vector<MicroBatch> StepGraph::to_device(const StepBatch& batch) const {
  std::vector<MicroBatch> out;
  for (const auto& m : batch.micro) {
    out.push_back({m.inputs.to(device_, /*non_blocking=*/true), m.rows.to(device_, true), m.targets.to(device_, true)});
  }
  return out;
}

void StepGraph::run(const StepBatch& batch, const Body& body) {
  steps_run_ += 1;
#ifdef BLA_HAVE_CUDA_KERNELS
  auto& g = *graph_;
  if (g.state == Graph::State::kCaptured) {
    for (size_t i = 0; i < batch.micro.size(); ++i) {
      const MicroBatch& m = batch.micro[i];
      if (m.inputs.sizes() != g.buffers[i].inputs.sizes() || m.rows.sizes() != g.buffers[i].rows.sizes()) {
        // The feeder pads every batch to one shape (FeederOptions::pad_rows_to, pad_length_to): a bug if not.
        throw std::logic_error("a batch's shape changed after the step was captured in a CUDA graph: inputs " +
                               c10::str(m.inputs.sizes()) + " against " + c10::str(g.buffers[i].inputs.sizes()) +
                               ", rows " + c10::str(m.rows.sizes()) + " against " +
                               c10::str(g.buffers[i].rows.sizes()) + " (train.cuda_graph: off avoids it)");
      }
    }
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
