// bla-bench: times attention ops on the GPU and sets each time against the
// machine's own ceilings (a large device copy, a large bf16 matmul, both
// measured here) and against a reference implementation.
//
//   bla-bench --op swa --batch 4 --seq 8192 --heads 16 --dim 64 --window 512 --dtype bf16
//
// Timing: CUDA events around each repetition, after warm-up; the median over
// --reps repetitions that cycle through --sets independent random input sets
// (so no run reads its inputs from a cache the previous run warmed).
// FLOPs count only visible (query, key) pairs: 4*D per pair forward (QK^T and
// PV), 3.5x that for forward+backward (the usual 2 + 5 matmuls). Bytes are the
// fewest possible: q, k, v read and out written once forward; plus out, dout
// read and dq, dk, dv written backward.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bla/compat.h"
#include "bla/ops/bla/bla.h"
#include "bla/ops/bla/modal.h"
#include "bla/ops/gatedfwa/gatedfwa.h"
#include "bla/ops/gla/gla.h"
#include "bla/ops/gsa/gsa.h"
#include "bla/ops/mamba2/mamba2.h"
#include "bla/util/exit_codes.h"

#ifdef BLA_HAVE_CUDA_KERNELS  // bla-bench links bla_kernels (benchmarks/CMakeLists.txt)
#include <ATen/cuda/CUDAContext.h>
#include <bla_kernels/bla.h>
#include <bla_kernels/swa.h>
#include <cuda_runtime_api.h>
#endif

namespace {

const char* const kUsage = R"(usage: bla-bench [options]
Times attention ops on a GPU: needs a CUDA build and a GPU.
  --op NAME        swa (sliding window) | attention (full causal) | bla |
                   bla-chunk | gla | gsa | ssd | gatedfwa           [swa]
                   bla times the BLA op as training calls it (the fused kernel
                   where it applies) against its LibTorch chunked form;
                   bla-chunk times the fused chunk kernel alone (no carry scan);
                   gla, gsa (--slots slots), ssd (the Mamba2-like mixer's op,
                   state N = --dim, one group per head) and gatedfwa (--window)
                   time each op as training calls it; their gates are inputs
                   without gradients (q, k, v get theirs)
  --batch N        [4]      --seq N      [8192]
  --heads N        [16]     --dim N      [64]
  --window N       [512]    (swa, bla, gatedfwa; attention uses the whole sequence)
  --slots N        [64]     --chunk N    [64]    (bla, gsa; chunk also gla, ssd)
  --dtype T        bf16 | fp32                                      [bf16]
  --pass P         fwd | fwdbwd | both                              [both]
  --bias           add a per-token logit bias (GatedFWA); no reference then
  --kernel-backward  ssd: the kernels' three-pass backward for fwd+bwd (by
                   default training's choice, the LibTorch form's backward)
  --warmup N       [10]     --reps N     [50]     --sets N   [4]
  --no-reference   skip the reference implementation
  --no-ceilings    skip measuring copy bandwidth and matmul rate
  --json           print one JSON object instead of the table
)";

struct Options {
  std::string op = "swa";
  int64_t batch = 4, seq = 8192, heads = 16, dim = 64, window = 512, slots = 64, chunk = 64;
  std::string dtype = "bf16";
  std::string pass = "both";
  bool bias = false;
  bool kernel_backward = false;
  int warmup = 10, reps = 50, sets = 4;
  bool reference = true, ceilings = true, json = false;
};

Options parse(int argc, char** argv) {
  Options o;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) throw bla::util::ArgumentError(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  // A non-negative integer of at most `max`.
  auto integer = [&](int& i, int64_t max = int64_t{1} << 40) -> int64_t {
    const std::string flag = argv[i], text = value(i);
    const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || text.size() > 18 || std::stoll(text) > max) {
      throw bla::util::ArgumentError(flag + " wants an integer in [0, " + std::to_string(max) + "], got '" + text + "'");
    }
    return std::stoll(text);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--op") o.op = value(i);
    else if (a == "--batch") o.batch = integer(i);
    else if (a == "--seq") o.seq = integer(i);
    else if (a == "--heads") o.heads = integer(i);
    else if (a == "--dim") o.dim = integer(i);
    else if (a == "--window") o.window = integer(i);
    else if (a == "--slots") o.slots = integer(i);
    else if (a == "--chunk") o.chunk = integer(i);
    else if (a == "--dtype") o.dtype = value(i);
    else if (a == "--pass") o.pass = value(i);
    else if (a == "--bias") o.bias = true;
    else if (a == "--kernel-backward")
      o.kernel_backward = true;
    else if (a == "--warmup") o.warmup = static_cast<int>(integer(i, 1 << 20));
    else if (a == "--reps") o.reps = static_cast<int>(integer(i, 1 << 20));
    else if (a == "--sets") o.sets = static_cast<int>(integer(i, 1 << 10));
    else if (a == "--no-reference") o.reference = false;
    else if (a == "--no-ceilings") o.ceilings = false;
    else if (a == "--json") o.json = true;
    else if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      throw bla::util::ArgumentError("unknown option '" + a + "'; see --help");
    }
  }
  const std::vector<std::string> ops = {"swa", "attention", "bla", "bla-chunk", "gla", "gsa", "ssd", "gatedfwa"};
  if (std::find(ops.begin(), ops.end(), o.op) == ops.end())
    throw bla::util::ArgumentError("--op must be swa, attention, bla, bla-chunk, gla, gsa, ssd or gatedfwa, got '" +
                                   o.op + "'");
  if (o.bias && o.op != "swa" && o.op != "attention")
    throw bla::util::ArgumentError("--bias is for swa and attention, not " + o.op);
  if (o.kernel_backward && o.op != "ssd") throw bla::util::ArgumentError("--kernel-backward is for ssd, not " + o.op);
  if (o.dtype != "bf16" && o.dtype != "fp32")
    throw bla::util::ArgumentError("--dtype must be bf16 or fp32, got '" + o.dtype + "'");
  if (o.pass != "fwd" && o.pass != "fwdbwd" && o.pass != "both")
    throw bla::util::ArgumentError("--pass must be fwd, fwdbwd or both, got '" + o.pass + "'");
  if (o.batch < 1 || o.seq < 1 || o.heads < 1 || o.dim < 1)
    throw bla::util::ArgumentError("--batch, --seq, --heads and --dim must be >= 1");
  if (o.reps < 1 || o.sets < 1) throw bla::util::ArgumentError("--reps and --sets must be >= 1");
  if (o.op == "attention") o.window = 0;
  return o;
}

// Whether --slots shapes the op: BLA's slots, GSA's.
bool uses_slots(const std::string& op) { return op.rfind("bla", 0) == 0 || op == "gsa"; }

// Visible (query, key) pairs per head: sum over t of min(t + 1, W).
double visible_pairs(int64_t seq, int64_t window) {
  const double T = static_cast<double>(seq);
  if (window <= 0 || window >= seq) return T * (T + 1) / 2;
  const double W = static_cast<double>(window);
  return W * (W + 1) / 2 + (T - W) * W;
}

struct Row {
  std::string impl, pass;
  double ms = NAN;
  double flops = 0, bytes = 0;
  std::string note;
};

std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";
  std::ostringstream out;
  out.precision(6);
  out << x;
  return out.str();
}

#ifdef BLA_HAVE_CUDA_KERNELS

// Median milliseconds of body(set) over reps, CUDA events on the current stream.
double median_ms(const std::function<void(int)>& body, const Options& o) {
  for (int i = 0; i < o.warmup; ++i) body(i % o.sets);
  torch::cuda::synchronize();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream().stream();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> times;
  for (int r = 0; r < o.reps; ++r) {
    cudaEventRecord(start, stream);
    body(r % o.sets);
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0.f;
    cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorString(err));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Ceilings {
  double copy_gbps = NAN, matmul_tflops = NAN;
};

// A 1 GiB device-to-device copy (bytes read + written) and an 8192^3 bf16
// matmul: what this card really reaches, to judge the ops against.
Ceilings measure_ceilings() {
  Ceilings c;
  Options timing;
  timing.warmup = 3;
  timing.reps = 20;
  timing.sets = 1;
  const auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(at::kBFloat16);
  {
    const int64_t n = int64_t{1} << 29;  // 1 GiB of bf16
    auto src = torch::randn({n}, opts), dst = torch::empty({n}, opts);
    const double ms = median_ms([&](int) { dst.copy_(src); }, timing);
    c.copy_gbps = 2.0 * n * 2 / (ms * 1e6);
  }
  {
    const int64_t n = 8192;
    auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts), out = torch::empty({n, n}, opts);
    const double ms = median_ms([&](int) { at::mm_out(out, a, b); }, timing);
    c.matmul_tflops = 2.0 * n * n * n / (ms * 1e9);
  }
  return c;
}

struct InputSet {
  at::Tensor q, k, v, grad_out, bias;
  at::Tensor gate;  // gla: log decay (B, T, H, D); gsa: log forget (B, T, H, slots); ssd: dt (B, T, H);
                    // gatedfwa: log gate (B, T, H)
  at::Tensor decay;  // ssd: A (H), negative
};

// --sets independent random inputs (B, T, H, D), and the per-token bias with --bias.
std::vector<InputSet> make_input_sets(const Options& o) {
  const auto dtype = o.dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  const auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
  torch::manual_seed(0);
  std::vector<InputSet> sets(o.sets);
  for (auto& s : sets) {
    s.q = torch::randn({o.batch, o.seq, o.heads, o.dim}, opts);
    s.k = torch::randn({o.batch, o.seq, o.heads, o.dim}, opts);
    s.v = torch::randn({o.batch, o.seq, o.heads, o.dim}, opts);
    s.grad_out = torch::randn({o.batch, o.seq, o.heads, o.dim}, opts);
    if (o.bias)
      s.bias = torch::cumsum(
          torch::log_sigmoid(torch::randn({o.batch, o.seq, o.heads}, opts.dtype(at::kFloat)) + 3.0), 1);
    // Gates as the layers make them: log-sigmoid decays, GLA's over 16 (its normaliser) as FLA draws them.
    const auto f32 = opts.dtype(at::kFloat);
    if (o.op == "gla") s.gate = torch::log_sigmoid(torch::randn({o.batch, o.seq, o.heads, o.dim}, opts)) / 16;
    if (o.op == "gsa") s.gate = torch::log_sigmoid(torch::randn({o.batch, o.seq, o.heads, o.slots}, opts));
    if (o.op == "gatedfwa") s.gate = torch::log_sigmoid(torch::randn({o.batch, o.seq, o.heads}, f32) + 3.0);
    if (o.op == "ssd") {
      s.gate = torch::softplus(torch::randn({o.batch, o.seq, o.heads}, f32) - 2.0);  // dt > 0
      s.decay = -torch::rand({o.heads}, f32) * 15.0 - 1.0;                        // A in (-16, -1)
    }
  }
  return sets;
}

// An implementation timed on one input set: (set, q, k, v) -> out, where q,
// k, v are the set's tensors or leaves that require grad.
using Impl = std::function<at::Tensor(const InputSet&, const at::Tensor&, const at::Tensor&, const at::Tensor&)>;

// What one --op times: the implementation under test, its reference (none:
// an empty reference_name), and the forward FLOPs the rows are rated by.
struct Benchmark {
  std::string name;
  Impl impl;
  std::string reference_name;
  Impl reference;
  double fwd_flops = 0;
};

// FLOPs of SWA and attention: 2D multiply-adds per visible (query, key) pair, twice.
double attention_flops(const Options& o) {
  return 4.0 * o.dim * visible_pairs(o.seq, o.window) * o.batch * o.heads;
}

// BLA: about 2CN + 2CD + 2N^2 + 4ND multiply-adds per token and head
// (docs/bla.md, "Training").
double bla_flops(const Options& o) {
  const double macs = 2.0 * o.chunk * o.slots + 2.0 * o.chunk * o.dim + 2.0 * o.slots * o.slots + 4.0 * o.slots * o.dim;
  return 2.0 * macs * static_cast<double>(o.batch * o.seq * o.heads);
}

// --op swa and --op attention (window 0): the SWA kernel through autograd.
Impl swa_kernel(const Options& o, double scale) {
  return [window = o.window, scale](const InputSet& s, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return bla::kernels::swa_forward_autograd(q, k, v, window, scale, s.bias);
  };
}

// --op swa: the kernel against SDPA with the band as a boolean mask (no
// reference with --bias).
Benchmark swa_benchmark(const Options& o, double scale) {
  Benchmark b{"kernel", swa_kernel(o, scale), "", nullptr, attention_flops(o)};
#if BLA_TORCH_AT_LEAST(2, 1)
  if (o.reference && !o.bias) {
    auto t = torch::arange(o.seq, torch::TensorOptions().device(torch::kCUDA).dtype(at::kLong)).unsqueeze(1);
    auto s = t.transpose(0, 1);
    const at::Tensor band = (s <= t).logical_and(t - s < o.window);  // (T, T) bool: key visible from query
    b.reference_name = "sdpa-masked";
    b.reference = [band, scale](const InputSet&, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
      return at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), band, 0.0,
                                              false, scale)
          .transpose(1, 2);
    };
  }
#endif
  return b;
}

// --op attention: the kernel over the whole sequence against causal SDPA
// (cuDNN or flash).
Benchmark attention_benchmark(const Options& o, double scale) {
  Benchmark b{"kernel", swa_kernel(o, scale), "", nullptr, attention_flops(o)};
#if BLA_TORCH_AT_LEAST(2, 1)
  if (o.reference && !o.bias) {
    b.reference_name = "sdpa-causal";
    b.reference = [scale](const InputSet&, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
      return bla::compat::causal_sdpa(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale).transpose(1, 2);
    };
  }
#endif
  return b;
}

// --op bla: the BLA op as training calls it (the fused kernel where it
// applies) against its LibTorch chunked form.
Benchmark bla_benchmark(const Options& o, double scale, const InputSet& example) {
  const bla::ops::BlaOptions bla_options{o.window, o.slots, o.chunk, scale};
  bla_options.validate();
  std::string route;
  const bool fused = bla::ops::bla_kernel_supported(example.q, example.k, example.v, bla_options, &route);
  if (!fused) std::cerr << "bla-bench: no BLA kernel for this shape: " << route << "\n";
  Benchmark b{fused ? "bla-kernel" : "bla-libtorch",
              [bla_options](const InputSet&, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
                return bla::ops::blurry_window_attention(q, k, v, bla_options);
              },
              "", nullptr, bla_flops(o)};
  if (o.reference) {
    b.reference_name = "bla-libtorch";
    b.reference = [bla_options](const InputSet&, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
      return bla::ops::blurry_window_attention_chunked(q, k, v, bla_options);
    };
  }
  return b;
}

// --op bla-chunk: the fused chunk kernel alone on random modal slots (no
// carry scan, no reference).
Benchmark bla_chunk_benchmark(const Options& o, double scale, const InputSet& example) {
  const auto modal = bla::ops::make_bla_modal_operators(o.window, o.slots, bla::kernels::kBlaKernelChunk);
  const auto ops = bla::ops::make_bla_operators(o.window, o.slots, bla::kernels::kBlaKernelChunk);
  const bla::kernels::BlaChunkTables tables =
      bla::kernels::make_bla_chunk_tables(o.window, o.slots, ops.kernel, modal.basis, modal.basis_inverse, modal.alpha,
                                          modal.beta, modal.beta_t, modal.partner, example.q.device());
  const int64_t chunks = (o.seq + bla::kernels::kBlaKernelChunk - 1) / bla::kernels::kBlaKernelChunk;
  const auto f32 = torch::TensorOptions().device(torch::kCUDA).dtype(at::kFloat);
  const at::Tensor modal_keys = torch::randn({o.batch, o.heads, chunks, o.slots, o.dim}, f32);
  const at::Tensor modal_values = torch::randn({o.batch, o.heads, chunks, o.slots, o.dim}, f32);
  return {"bla-chunk",
          [tables, modal_keys, modal_values, scale](const InputSet&, const at::Tensor& q, const at::Tensor& k,
                                                    const at::Tensor& v) {
            return bla::kernels::bla_chunk_attention(q, k, v, modal_keys, modal_values, tables, scale);
          },
          "", nullptr, bla_flops(o)};
}

// Multiply-adds per token and head of a chunked linear recurrence with an
// a x b state per head: scores over the chunk (C a), their weighted sum
// (C b), the state read and its update (2 a b). An estimate to rate rows by.
double recurrence_flops(const Options& o, double a, double b) {
  const double macs = o.chunk * a + o.chunk * b + 2.0 * a * b;
  return 2.0 * macs * static_cast<double>(o.batch * o.seq * o.heads);
}

// --op gla, gsa, ssd, gatedfwa: each op as its layer calls it in training,
// without a reference (the LibTorch forms are what runs where no kernel does).
Benchmark mixer_op_benchmark(const Options& o, double scale) {
  if (o.op == "gla") {
    const bla::ops::GlaOptions opt{o.chunk, scale};
    return {"gla-op",
            [opt](const InputSet& s, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
              return bla::ops::gated_linear_attention(q, k, v, s.gate, opt);
            },
            "", nullptr, recurrence_flops(o, o.dim, o.dim)};
  }
  if (o.op == "gsa") {
    const bla::ops::GsaOptions opt{o.chunk};
    return {"gsa-op",
            [opt](const InputSet& s, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
              return bla::ops::gated_slot_attention(q, k, v, s.gate, opt);
            },
            "", nullptr, recurrence_flops(o, o.dim, o.slots) + recurrence_flops(o, o.slots, o.dim)};
  }
  if (o.op == "ssd") {
    bla::ops::SsdOptions opt{o.chunk};
    opt.kernel_backward = o.kernel_backward;
    // x = v, B = k, C = q: state N = --dim, one group per head.
    return {"ssd-op",
            [opt](const InputSet& s, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
              return bla::ops::selective_state_space(v, s.gate, s.decay, k, q, at::Tensor(), opt);
            },
            "", nullptr, recurrence_flops(o, o.dim, o.dim)};
  }
  bla::ops::GatedWindowOptions opt;
  opt.window = o.window;
  opt.scale = scale;
  return {"gatedfwa-op",
          [opt](const InputSet& s, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
            return bla::ops::gated_window_attention(q, k, v, s.gate, opt);
          },
          "", nullptr, attention_flops(o)};
}

Benchmark make_benchmark(const Options& o, const std::vector<InputSet>& sets) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(o.dim));
  if (o.op == "attention") return attention_benchmark(o, scale);
  if (o.op == "bla") return bla_benchmark(o, scale, sets[0]);
  if (o.op == "bla-chunk") return bla_chunk_benchmark(o, scale, sets[0]);
  if (o.op == "swa") return swa_benchmark(o, scale);
  return mixer_op_benchmark(o, scale);
}

// The forward alone (no autograd) and forward + backward (torch::autograd::grad
// for q, k, v against the set's grad_out), as --pass asks; a failure becomes
// the row's note.
void time_impl(const std::string& name, const Impl& fn, double fwd_flops, const std::vector<InputSet>& sets,
               const Options& o, std::vector<Row>& rows) {
  const double elt = o.dtype == "bf16" ? 2.0 : 4.0;
  const double tensor_bytes = static_cast<double>(o.batch) * o.seq * o.heads * o.dim * elt;
  if (o.pass != "fwdbwd") {
    Row r;
    r.impl = name;
    r.pass = "fwd";
    r.flops = fwd_flops;
    r.bytes = 4 * tensor_bytes;
    try {
      torch::NoGradGuard no_grad;
      r.ms = median_ms([&](int i) { fn(sets[i], sets[i].q, sets[i].k, sets[i].v); }, o);
    } catch (const std::exception& e) {
      r.note = e.what();
    }
    rows.push_back(r);
  }
  if (o.pass != "fwd") {
    Row r;
    r.impl = name;
    r.pass = "fwd+bwd";
    r.flops = 3.5 * fwd_flops;
    r.bytes = 12 * tensor_bytes;
    try {
      std::vector<std::vector<at::Tensor>> leaves;
      for (auto& s : sets)
        leaves.push_back({s.q.detach().requires_grad_(true), s.k.detach().requires_grad_(true),
                          s.v.detach().requires_grad_(true)});
      r.ms = median_ms(
          [&](int i) {
            auto& l = leaves[i];
            auto out = fn(sets[i], l[0], l[1], l[2]);
            // grad() rather than backward(): no accumulation into .grad
            auto grads = torch::autograd::grad({out}, {l[0], l[1], l[2]}, {sets[i].grad_out});
          },
          o);
    } catch (const std::exception& e) {
      r.note = e.what();
    }
    rows.push_back(r);
  }
}

// ref/this: how many times faster the implementation is than the reference.
double reference_ms(const std::vector<Row>& rows, const std::string& reference_name, const std::string& pass) {
  for (const auto& r : rows)
    if (r.impl == reference_name && r.pass == pass) return r.ms;
  return static_cast<double>(NAN);
}

void print_json(const Options& o, const std::string& device, const Ceilings& ceilings, const std::vector<Row>& rows,
                const std::string& reference_name) {
  std::cout << "{\"op\":\"" << o.op << "\",\"device\":\"" << device << "\",\"batch\":" << o.batch
            << ",\"seq\":" << o.seq << ",\"heads\":" << o.heads << ",\"dim\":" << o.dim << ",\"window\":" << o.window
            << ",\"slots\":" << (uses_slots(o.op) ? o.slots : 0) << ",\"dtype\":\"" << o.dtype
            << "\",\"bias\":" << (o.bias ? "true" : "false")
            << ",\"kernel_backward\":" << (o.kernel_backward ? "true" : "false") << ",\"reps\":" << o.reps
            << ",\"sets\":" << o.sets << ",\"copy_gbps\":" << json_number(ceilings.copy_gbps)
            << ",\"matmul_tflops\":" << json_number(ceilings.matmul_tflops) << ",\"results\":[";
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const double tflops = r.flops / (r.ms * 1e9), gbps = r.bytes / (r.ms * 1e6);
    std::cout << (i ? "," : "") << "{\"impl\":\"" << r.impl << "\",\"pass\":\"" << r.pass
              << "\",\"ms\":" << json_number(r.ms) << ",\"tflops\":" << json_number(tflops)
              << ",\"gbps\":" << json_number(gbps) << ",\"frac_copy\":" << json_number(gbps / ceilings.copy_gbps)
              << ",\"frac_matmul\":" << json_number(tflops / ceilings.matmul_tflops)
              << ",\"ref_over_this\":" << json_number(reference_ms(rows, reference_name, r.pass) / r.ms) << "}";
  }
  std::cout << "]}\n";
}

void print_table(const Options& o, const std::string& device, const Ceilings& ceilings, const std::vector<Row>& rows,
                 const std::string& reference_name) {
  const std::string slots =
      uses_slots(o.op) ? " slots=" + std::to_string(o.slots) + " chunk=" + std::to_string(o.chunk) : "";
  std::printf("bla-bench: %s  B=%ld T=%ld H=%ld D=%ld window=%ld%s %s%s  on %s\n", o.op.c_str(),
              static_cast<long>(o.batch), static_cast<long>(o.seq), static_cast<long>(o.heads),
              static_cast<long>(o.dim), static_cast<long>(o.window), slots.c_str(), o.dtype.c_str(),
              o.bias ? " +bias" : "", device.c_str());
  std::printf(
      "ceilings measured here: copy %.0f GB/s, bf16 matmul %.0f TFLOP/s; median of %d reps over %d input sets\n",
      ceilings.copy_gbps, ceilings.matmul_tflops, o.reps, o.sets);
  std::printf("%-13s %-8s %9s %9s %8s %7s %7s %9s\n", "impl", "pass", "ms", "TFLOP/s", "GB/s", "%copy", "%mm",
              "ref/this");
  for (const auto& r : rows) {
    const double tflops = r.flops / (r.ms * 1e9), gbps = r.bytes / (r.ms * 1e6);
    std::printf("%-13s %-8s %9.3f %9.1f %8.0f %6.1f%% %6.1f%% %9.2f%s%s\n", r.impl.c_str(), r.pass.c_str(), r.ms,
                tflops, gbps, 100 * gbps / ceilings.copy_gbps, 100 * tflops / ceilings.matmul_tflops,
                reference_ms(rows, reference_name, r.pass) / r.ms, r.note.empty() ? "" : "  ",
                r.note.substr(0, 120).c_str());
  }
}

int run(const Options& o) {
  if (!torch::cuda::is_available()) {
    throw std::runtime_error("CUDA is unavailable (no GPU visible to LibTorch); bla-bench needs a GPU");
  }
  const std::vector<InputSet> sets = make_input_sets(o);
  std::string why;
  if (!bla::kernels::swa_supported(sets[0].q, sets[0].k, sets[0].v, o.window, &why)) {
    throw bla::util::ArgumentError("the SWA kernel does not take this shape: " + why);
  }
  const Benchmark bench = make_benchmark(o, sets);
  Ceilings ceilings;
  if (o.ceilings) ceilings = measure_ceilings();
  std::vector<Row> rows;
  time_impl(bench.name, bench.impl, bench.fwd_flops, sets, o, rows);
  if (bench.reference) time_impl(bench.reference_name, bench.reference, bench.fwd_flops, sets, o, rows);
  const std::string device = at::cuda::getCurrentDeviceProperties()->name;
  if (o.json) print_json(o, device, ceilings, rows, bench.reference_name);
  else print_table(o, device, ceilings, rows, bench.reference_name);
  return 0;
}

#else

int run(const Options&) {
  throw std::runtime_error("CUDA is unavailable: this build has no CUDA kernels (LibTorch " +
                           std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                           " without CUDA); bla-bench needs a CUDA build and a GPU");
}

#endif

}  // namespace

int main(int argc, char** argv) {
  return bla::util::run_guarded("bla-bench", {}, [&] { return run(parse(argc, argv)); });
}
