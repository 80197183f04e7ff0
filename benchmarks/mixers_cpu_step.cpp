// CPU time of one training step (forward + backward) of each comparison
// mixer's chunked form at a given sequence length (issue 4, "Measure and
// report"; results in docs/mixers.md). Two levels are timed:
//   op:    the functional chunked form alone (ssd, gla, gsa, gated window),
//          beside softmax SWA and, with --reference, the token-loop forms;
//   layer: the full mixer layer (projections, gates, norms) at d_model =
//          heads * head_dim.
// float32, one thread by default (the CPU is shared); prints a Markdown table
// with the median and the spread of --reps timed repetitions after one
// warm-up. Times are the process's CPU time (CLOCK_PROCESS_CPUTIME_ID), which
// on a shared machine stays close to the compute itself where wall-clock time
// also counts waiting for a core; the wall-clock median is printed beside it.
//
//   mixers_cpu_step [--seq 1024] [--batch 2] [--heads 2] [--head-dim 64]
//                   [--window 64] [--slots 64] [--chunk 64] [--reps 5]
//                   [--threads 1] [--reference]
#include "bla/mixers/gatedfwa/gatedfwa_layer.h"
#include "bla/mixers/gla/gla_layer.h"
#include "bla/mixers/gsa/gsa_layer.h"
#include "bla/mixers/mamba2/mamba2_layer.h"
#include "bla/ops/attention/attention.h"
#include "bla/ops/gatedfwa/gatedfwa.h"
#include "bla/ops/gla/gla.h"
#include "bla/ops/gsa/gsa.h"
#include "bla/ops/mamba2/mamba2.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Settings {
  int64_t seq = 1024, batch = 2, heads = 2, head_dim = 64, window = 64, slots = 64, chunk = 64, reps = 5, threads = 1;
  bool reference = false;
};

Settings parse(int argc, char** argv) {
  Settings s;
  std::map<std::string, int64_t*> numbers = {{"--seq", &s.seq},       {"--batch", &s.batch},   {"--heads", &s.heads},
                                             {"--head-dim", &s.head_dim}, {"--window", &s.window}, {"--slots", &s.slots},
                                             {"--chunk", &s.chunk},   {"--reps", &s.reps},     {"--threads", &s.threads}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--reference") {
      s.reference = true;
    } else if (numbers.count(arg) && i + 1 < argc) {
      *numbers[arg] = std::stoll(argv[++i]);
    } else {
      throw std::invalid_argument("unknown or incomplete option '" + arg +
                                  "'; options: --seq --batch --heads --head-dim --window --slots --chunk --reps "
                                  "--threads (each with a number) and --reference");
    }
  }
  if (s.reps < 1 || s.threads < 1) throw std::invalid_argument("--reps and --threads must be >= 1");
  return s;
}

double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return 1e3 * static_cast<double>(ts.tv_sec) + 1e-6 * static_cast<double>(ts.tv_nsec);
}

struct Timings {
  std::vector<double> cpu, wall;  // milliseconds per call, sorted
};

// CPU and wall-clock milliseconds of each of `reps` calls of `step` after one warm-up call.
Timings time_ms(const std::function<void()>& step, int64_t reps) {
  step();
  Timings out;
  for (int64_t r = 0; r < reps; ++r) {
    const double cpu_start = cpu_ms();
    const auto wall_start = std::chrono::steady_clock::now();
    step();
    out.wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall_start).count());
    out.cpu.push_back(cpu_ms() - cpu_start);
  }
  std::sort(out.cpu.begin(), out.cpu.end());
  std::sort(out.wall.begin(), out.wall.end());
  return out;
}

void report(const std::string& level, const std::string& name, const Timings& t) {
  std::printf("| %s | %s | %.1f | %.1f | %.1f | %.1f |\n", level.c_str(), name.c_str(), t.cpu[t.cpu.size() / 2],
              t.cpu.front(), t.cpu.back(), t.wall[t.wall.size() / 2]);
  std::fflush(stdout);
}

// forward + backward of <f(inputs), w> with the inputs as leaves.
std::function<void()> op_step(std::vector<torch::Tensor> inputs,
                              std::function<torch::Tensor(const std::vector<torch::Tensor>&)> f) {
  for (auto& t : inputs) t = t.detach().requires_grad_(true);
  auto weight = torch::randn_like(f(inputs).detach());
  return [inputs, f, weight]() mutable {
    for (auto& t : inputs) t.mutable_grad() = torch::Tensor();
    (f(inputs) * weight).sum().backward();
  };
}

std::function<void()> layer_step(const std::shared_ptr<bla::mixers::MixerImpl>& layer, const torch::Tensor& x) {
  auto weight = torch::randn_like(x);
  return [layer, x, weight]() {
    layer->zero_grad();
    (layer->forward(x) * weight).sum().backward();
  };
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  try {
    s = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "mixers_cpu_step: " << e.what() << "\n";
    return 2;
  }
  torch::set_num_threads(static_cast<int>(s.threads));
  torch::manual_seed(0);
  const int64_t B = s.batch, T = s.seq, H = s.heads, D = s.head_dim, d_model = H * D;
  std::printf("T=%lld, batch=%lld, heads=%lld, head_dim=%lld, window=%lld, slots=%lld, chunk=%lld, float32, "
              "threads=%lld, median of %lld reps after 1 warm-up\n\n",
              (long long)T, (long long)B, (long long)H, (long long)D, (long long)s.window, (long long)s.slots,
              (long long)s.chunk, (long long)s.threads, (long long)s.reps);
  std::printf("| level | form | CPU ms (median) | CPU min | CPU max | wall ms (median) |\n"
              "| --- | --- | --- | --- | --- | --- |\n");

  auto rn = [](std::vector<int64_t> shape) { return torch::randn(shape); };
  auto log_gate = [&](std::vector<int64_t> shape, double normalizer) {
    return torch::log_sigmoid(torch::randn(shape) + 2.0) / normalizer;
  };
  const int64_t subchunk = bla::ops::gla_subchunk(s.chunk);

  // --- op level ---
  {
    auto q = rn({B, T, H, D}), k = rn({B, T, H, D}), v = rn({B, T, H, D});
    auto swa = op_step({q, k, v}, [&](const auto& in) {
      return bla::ops::sliding_window_attention(in[0], in[1], in[2], {s.window, 0.0});
    });
    report("op", "swa (softmax, W=" + std::to_string(s.window) + ")", time_ms(swa, s.reps));
    auto g = log_gate({B, T, H}, 1.0);
    bla::ops::GatedWindowOptions gw{s.window, 0.0, s.chunk};
    report("op", "gated window (GatedFWA, W=" + std::to_string(s.window) + ")",
           time_ms(op_step({q, k, v, g}, [&](const auto& in) {
                     return bla::ops::gated_window_attention(in[0], in[1], in[2], in[3], gw);
                   }),
                   s.reps));
    if (s.reference) {
      report("op", "gated window reference", time_ms(op_step({q, k, v, g}, [&](const auto& in) {
                                                       return bla::ops::gated_window_attention_reference(
                                                           in[0], in[1], in[2], in[3], gw);
                                                     }),
                                                     std::min<int64_t>(s.reps, 3)));
    }
  }
  {
    // SSD at the layer's default shape: P = head_dim, N = 64, one group.
    const int64_t N = 64;
    auto x = rn({B, T, H, D});
    auto dt = torch::softplus(rn({B, T, H}) - 3.0);
    auto A = -torch::empty({H}).uniform_(1.0, 16.0);
    auto Bm = rn({B, T, 1, N}), Cm = rn({B, T, 1, N}), Dskip = torch::ones({H});
    report("op", "ssd (Mamba2, N=64, chunk " + std::to_string(s.chunk) + ")",
           time_ms(op_step({x, dt, Bm, Cm}, [&](const auto& in) {
                     return bla::ops::selective_state_space(in[0], in[1], A, in[2], in[3], Dskip, {s.chunk});
                   }),
                   s.reps));
    if (s.reference) {
      report("op", "ssd reference (token loop)", time_ms(op_step({x, dt, Bm, Cm}, [&](const auto& in) {
                                                          return bla::ops::selective_state_space_reference(
                                                              in[0], in[1], A, in[2], in[3], Dskip);
                                                        }),
                                                        std::min<int64_t>(s.reps, 3)));
    }
  }
  {
    // GLA at the layer's default shape: d_k = head_dim / 2, d_v = head_dim.
    auto q = rn({B, T, H, D / 2}), k = rn({B, T, H, D / 2}), v = rn({B, T, H, D});
    auto g = log_gate({B, T, H, D / 2}, 16.0);
    bla::ops::GlaOptions opt{s.chunk, 0.0, subchunk};
    report("op", "gla (d_k=" + std::to_string(D / 2) + ", chunk " + std::to_string(s.chunk) + ")",
           time_ms(op_step({q, k, v, g}, [&](const auto& in) {
                     return bla::ops::gated_linear_attention(in[0], in[1], in[2], in[3], opt);
                   }),
                   s.reps));
    if (s.reference) {
      report("op", "gla reference (token loop)", time_ms(op_step({q, k, v, g}, [&](const auto& in) {
                                                          return bla::ops::gated_linear_attention_reference(
                                                              in[0], in[1], in[2], in[3], opt);
                                                        }),
                                                        std::min<int64_t>(s.reps, 3)));
    }
  }
  {
    auto q = torch::silu(rn({B, T, H, D})), k = torch::silu(rn({B, T, H, D})), v = rn({B, T, H, D});
    auto f = log_gate({B, T, H, s.slots}, 8.0);
    bla::ops::GsaOptions opt{s.chunk, 1.0, subchunk};
    report("op", "gsa (m=" + std::to_string(s.slots) + ", chunk " + std::to_string(s.chunk) + ")",
           time_ms(op_step({q, k, v, f}, [&](const auto& in) {
                     return bla::ops::gated_slot_attention(in[0], in[1], in[2], in[3], opt);
                   }),
                   s.reps));
    if (s.reference) {
      report("op", "gsa reference (token loop)", time_ms(op_step({q, k, v, f}, [&](const auto& in) {
                                                          return bla::ops::gated_slot_attention_reference(
                                                              in[0], in[1], in[2], in[3], opt);
                                                        }),
                                                        std::min<int64_t>(s.reps, 3)));
    }
  }

  // --- layer level: d_model = heads * head_dim ---
  using namespace bla::mixers;
  MixerContext ctx{d_model, H, 0, T};
  auto x = rn({B, T, d_model});
  {
    GatedFwaOptions o;
    o.window = s.window;
    o.block = s.chunk;
    report("layer", "gatedfwa", time_ms(layer_step(std::make_shared<GatedFwaLayer>(ctx, HeadLayout{H, D, D}, o), x), s.reps));
  }
  {
    Mamba2Options o;
    o.chunk = s.chunk;
    report("layer", "mamba2 (expand 2: " + std::to_string(2 * d_model / o.head_dim) + " heads of 64)",
           time_ms(layer_step(std::make_shared<Mamba2Layer>(ctx, o), x), s.reps));
  }
  {
    GlaLayerOptions o;
    o.heads = H;
    o.chunk = s.chunk;
    report("layer", "gla", time_ms(layer_step(std::make_shared<GlaLayer>(ctx, o, D / 2, D), x), s.reps));
  }
  {
    GsaLayerOptions o;
    o.heads = H;
    o.slots = s.slots;
    o.chunk = s.chunk;
    report("layer", "gsa", time_ms(layer_step(std::make_shared<GsaLayer>(ctx, o, D), x), s.reps));
  }
  return 0;
}
