// The gated recurrence's kernels (kernels/gla_kernels.cuh and, for float32
// with tensor cores, gla_tensor_core_kernels.cuh, launched through
// gla_forward_launch) against the recurrence token by token in float64 on
// the CPU, then timed. Plain CUDA C++, no LibTorch; runs on the CPU under
// cpu_emulation.h (small shapes) as well as on a GPU.
//
//   nvcc -std=c++17 -O3 -arch=sm_90 --use_fast_math --expt-relaxed-constexpr -Ikernels \
//        kernels/dev/gla_forward_dev.cu kernels/gla_kernels.cu -o gla_forward_dev
//   ./gla_forward_dev                       # checks, then timings at B=4 T=8192 H=16, D 64 and 128
//   ./gla_forward_dev --no-bench --T 130    # checks only, at another length
//   g++ -std=c++20 -O2 -fno-strict-aliasing -x c++ -include kernels/dev/cpu_emulation.h -I/usr/local/cuda/include \
//       -Ikernels kernels/dev/gla_forward_dev.cu kernels/gla_kernels.cu -o gla_emulated -lpthread
//   ./gla_emulated --no-bench --T 70 --dk 8 --dv 12   # on the CPU
//
// Checks: output and final state, the output again from given (transposed)
// chunk states, both decay axes, forward and reversed in
// time (the gradients' passes), heads-first and token-major memory (through
// strides), float32 and bf16 inputs, float32, float64 and
// float32 on tensor cores ("tf32"; head dims up to 64), the outputs filled
// with NaN first (anything unwritten fails); metric max |got - ref| / max
// |ref| (tf32: / the largest output of the recurrence over |q|, |k|, |v|);
// tolerances 1e-10 (float64), 1e-4 (float32) and 2e-3 (tf32). Exit status 1
// if a check failed.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "gla_launch.h"

namespace {

using bla::kernels::detail::GlaDtype;
using bla::kernels::detail::GlaElement;
using bla::kernels::detail::GlaStrides;
using bla::kernels::detail::GlaForwardArgs;
using bla::kernels::detail::GlaShape;

#define CHECK_CUDA(call)                                                                            \
  do {                                                                                              \
    const cudaError_t err_ = (call);                                                                \
    if (err_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(err_)); \
      std::exit(2);                                                                                 \
    }                                                                                               \
  } while (0)

struct Rng {  // splitmix64: the same inputs on every machine for a seed
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  double normal() { return std::sqrt(-2.0 * std::log(uniform() + 1e-300)) * std::cos(6.283185307179586 * uniform()); }
};

struct Problem {
  GlaShape shape;
  double scale = 0.125;
  std::vector<double> q, k, v, g;  // heads-first (B, H, T, D)
  int dg() const { return shape.value_axis ? shape.dv : shape.dk; }
};

Problem make_problem(GlaShape shape, double g_low, uint64_t seed) {
  Problem p;
  p.shape = shape;
  Rng rng{seed};
  const size_t rows = static_cast<size_t>(shape.batch) * shape.heads * shape.seq;
  auto fill = [&](std::vector<double>& x, int width) {
    x.resize(rows * width);
    for (auto& e : x) e = rng.normal();
  };
  fill(p.q, shape.dk);
  fill(p.k, shape.dk);
  fill(p.v, shape.dv);
  p.g.resize(rows * p.dg());
  for (auto& e : p.g) e = -0.01 + (g_low + 0.01) * rng.uniform();
  return p;
}

// The recurrence token by token: S_t = decay(g_t) S_{t-1} + k_t v_t^T, o_t = s S_t^T q_t;
// reversed (shape.reversed): over the rows T - 1 .. 0, row r decayed by g_{r+1} (g_T = 0).
void reference(const Problem& p, std::vector<double>& out, std::vector<double>& final_state) {
  const GlaShape& s = p.shape;
  const int Dk = s.dk, Dv = s.dv, Dg = p.dg();
  out.assign(static_cast<size_t>(s.batch) * s.heads * s.seq * Dv, 0.0);
  final_state.assign(static_cast<size_t>(s.batch) * s.heads * Dk * Dv, 0.0);
  for (int bh = 0; bh < s.batch * s.heads; ++bh) {
    double* S = &final_state[static_cast<size_t>(bh) * Dk * Dv];
    for (int t = 0; t < s.seq; ++t) {
      const int r = s.reversed ? s.seq - 1 - t : t;
      const size_t row = static_cast<size_t>(bh) * s.seq + r;
      const double* q = &p.q[row * Dk];
      const double* k = &p.k[row * Dk];
      const double* v = &p.v[row * Dv];
      const bool gated = !s.reversed || r + 1 < s.seq;
      const double* g = gated ? &p.g[(s.reversed ? row + 1 : row) * Dg] : nullptr;
      for (int a = 0; a < Dk; ++a)
        for (int e = 0; e < Dv; ++e) {
          const double decay = gated ? std::exp(g[s.value_axis ? e : a]) : 1.0;
          S[a * Dv + e] = decay * S[a * Dv + e] + k[a] * v[e];
        }
      for (int e = 0; e < Dv; ++e) {
        double acc = 0;
        for (int a = 0; a < Dk; ++a) acc += q[a] * S[a * Dv + e];
        out[row * Dv + e] = p.scale * acc;
      }
    }
  }
}

template <typename T>
struct Device {
  T* ptr = nullptr;
  size_t n = 0;
  explicit Device(size_t count) : n(count) {
    CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&ptr), count * sizeof(T)));
  }
  ~Device() { cudaFree(ptr); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  void upload(const std::vector<double>& x) {
    std::vector<T> host(x.begin(), x.end());
    CHECK_CUDA(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  void fill_nan() {
    std::vector<T> host(n, std::numeric_limits<T>::quiet_NaN());
    CHECK_CUDA(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<double> download() const {
    std::vector<T> host(n);
    CHECK_CUDA(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return std::vector<double>(host.begin(), host.end());
  }
};

// Heads-first (B, H, T, w) values in token-major order (B, T, H, w), or back.
std::vector<double> token_major(const std::vector<double>& x, const GlaShape& s, int w, bool back = false) {
  std::vector<double> y(x.size());
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h)
      for (int t = 0; t < s.seq; ++t)
        for (int d = 0; d < w; ++d) {
          const size_t heads_first = ((static_cast<size_t>(b) * s.heads + h) * s.seq + t) * w + d;
          const size_t tokens_first = ((static_cast<size_t>(b) * s.seq + t) * s.heads + h) * w + d;
          (back ? y[heads_first] : y[tokens_first]) = back ? x[tokens_first] : x[heads_first];
        }
  return y;
}

// The inputs, outputs and workspace of one run, in T; with layout_tokens,
// q, k, v, g and out lie token-major in memory (the layers' (B, T, H, D)),
// read and written through their strides.
template <typename T>
struct Run {
  const Problem& p;
  bool tokens_first;
  Device<T> q, k, v, g, out, states, totals, final_state;
  std::vector<std::unique_ptr<Device<__nv_bfloat16>>> bf16;  // q, k, v, g as bf16, where the run reads those
  explicit Run(const Problem& pr, bool layout_tokens = false, bool bf16_inputs = false)
      : p(pr),
        tokens_first(layout_tokens),
        q(pr.q.size()),
        k(pr.k.size()),
        v(pr.v.size()),
        g(pr.g.size()),
        out(static_cast<size_t>(pr.shape.batch) * pr.shape.heads * pr.shape.seq * pr.shape.dv),
        states(static_cast<size_t>(pr.shape.batch) * pr.shape.heads * bla::kernels::detail::gla_chunks(pr.shape.seq) *
               pr.shape.dk * pr.shape.dv),
        totals(static_cast<size_t>(pr.shape.batch) * pr.shape.heads * bla::kernels::detail::gla_chunks(pr.shape.seq) *
               pr.dg()),
        final_state(static_cast<size_t>(pr.shape.batch) * pr.shape.heads * pr.shape.dk * pr.shape.dv) {
    const auto& s = pr.shape;
    q.upload(tokens_first ? token_major(pr.q, s, s.dk) : pr.q);
    k.upload(tokens_first ? token_major(pr.k, s, s.dk) : pr.k);
    v.upload(tokens_first ? token_major(pr.v, s, s.dv) : pr.v);
    g.upload(tokens_first ? token_major(pr.g, s, pr.dg()) : pr.g);
    if (bf16_inputs)
      for (const auto* x : {&pr.q, &pr.k, &pr.v, &pr.g}) {
        bf16.push_back(std::make_unique<Device<__nv_bfloat16>>(x->size()));
        bf16.back()->upload(*x);
      }
  }
  std::vector<double> output() const {
    return tokens_first ? token_major(out.download(), p.shape, p.shape.dv, true) : out.download();
  }
  // entering: the states entering each chunk to read instead of computing
  // them (through `entering_strides`; the workspace and final state unused).
  cudaError_t launch(bool tensor_cores = false, const T* entering = nullptr,
                     bla::kernels::detail::GlaStateStrides entering_strides = {}) {
    GlaForwardArgs a;
    a.shape = p.shape;
    a.dtype = sizeof(T) == 8 ? GlaDtype::kFloat64 : GlaDtype::kFloat32;
    a.tensor_cores = tensor_cores;
    a.scale = p.scale;
    const auto element = sizeof(T) == 8 ? GlaElement::kFloat64 : GlaElement::kFloat32;
    const auto& s = p.shape;
    auto strides = [&](int w) {  // all 0: contiguous heads-first
      const long long row = static_cast<long long>(s.heads) * w;
      return tokens_first ? GlaStrides{row * s.seq, w, row} : GlaStrides{};
    };
    a.q = {q.ptr, strides(s.dk), element};
    a.k = {k.ptr, strides(s.dk), element};
    a.v = {v.ptr, strides(s.dv), element};
    a.g = {g.ptr, strides(p.dg()), element};
    if (!bf16.empty()) {  // heads-first bf16 copies
      a.q = {bf16[0]->ptr, {}, GlaElement::kBFloat16};
      a.k = {bf16[1]->ptr, {}, GlaElement::kBFloat16};
      a.v = {bf16[2]->ptr, {}, GlaElement::kBFloat16};
      a.g = {bf16[3]->ptr, {}, GlaElement::kBFloat16};
    }
    a.out = out.ptr;
    a.out_strides = strides(s.dv);
    if (entering != nullptr) {
      a.entering = entering;
      a.entering_strides = entering_strides;
    } else {
      a.states = states.ptr;
      a.totals = totals.ptr;
      a.final_state = final_state.ptr;
    }
    return bla::kernels::detail::gla_forward_launch(a, nullptr);
  }
};

// max |got - ref| / max |magnitude| (magnitude: ref itself, or the same
// recurrence over |q|, |k|, |v|, which bounds what rounding each term can
// cost where the terms cancel).
double max_relative(const std::vector<double>& got, const std::vector<double>& ref,
                    const std::vector<double>& magnitude) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff = std::isnan(got[i]) ? std::numeric_limits<double>::infinity() : std::max(diff, std::fabs(got[i] - ref[i]));
    if (std::isinf(diff)) break;
    scale = std::max(scale, std::fabs(magnitude[i]));
  }
  return diff / (scale > 0 ? scale : 1.0);
}

int failures = 0;

template <typename T>
void check(const Problem& p, const char* name, bool tensor_cores = false, bool tokens_first = false,
           bool bf16_inputs = false) {
  int limit = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
  const size_t need =
      bla::kernels::detail::gla_smem_bytes(p.shape, sizeof(T) == 8 ? GlaDtype::kFloat64 : GlaDtype::kFloat32);
  if (need > static_cast<size_t>(limit)) {
    std::printf("check %-28s %-7s skipped: %zu bytes of shared memory, a block has %d\n", name,
                sizeof(T) == 8 ? "float64" : "float32", need, limit);
    return;
  }
  std::vector<double> ref_out, ref_state;
  reference(p, ref_out, ref_state);
  Run<T> run(p, tokens_first, bf16_inputs);
  run.out.fill_nan();
  run.final_state.fill_nan();
  CHECK_CUDA(run.launch(tensor_cores));
  CHECK_CUDA(cudaDeviceSynchronize());
  const double tol = sizeof(T) == 8 ? 1e-10 : tensor_cores ? 2e-3 : 1e-4;
  // tf32 rounds every operand to 10 bits: its error is measured against the
  // terms' magnitudes (a single token's q . k can cancel to near 0).
  std::vector<double> mag_out = ref_out, mag_state = ref_state;
  if (tensor_cores) {
    Problem magnitudes = p;
    for (auto* x : {&magnitudes.q, &magnitudes.k, &magnitudes.v})
      for (auto& e : *x) e = std::fabs(e);
    reference(magnitudes, mag_out, mag_state);
  }
  const double e_out = max_relative(run.output(), ref_out, mag_out);
  const double e_state = max_relative(run.final_state.download(), ref_state, mag_state);
  // Again from the states the run left in its workspace, given as another
  // pass's transposed ones are (src/bla/ops/gla/backward.h): a transposed
  // copy read through its strides; the state kernel and scan do not run.
  const auto& s = p.shape;
  const int chunks = bla::kernels::detail::gla_chunks(s.seq);
  const std::vector<double> entering = run.states.download();
  std::vector<double> transposed(entering.size());
  const size_t square = static_cast<size_t>(s.dk) * s.dv;
  for (size_t m = 0; m < entering.size() / square; ++m)
    for (int r = 0; r < s.dk; ++r)
      for (int c = 0; c < s.dv; ++c) transposed[m * square + c * s.dk + r] = entering[m * square + r * s.dv + c];
  Device<T> given(transposed.size());
  given.upload(transposed);
  run.out.fill_nan();
  const long long sq = static_cast<long long>(square);
  CHECK_CUDA(run.launch(tensor_cores, given.ptr, {s.heads * chunks * sq, chunks * sq, sq, 1, s.dk}));
  CHECK_CUDA(cudaDeviceSynchronize());
  const double e_given = max_relative(run.output(), ref_out, mag_out);
  const bool ok = e_out < tol && e_state < tol && e_given < tol;
  failures += ok ? 0 : 1;
  std::printf("check %-28s %-7s %-5s T=%-5d Dk=%-3d Dv=%-3d | out %.2e state %.2e given states %.2e (tol %.0e) %s\n",
              name, sizeof(T) == 8 ? "float64" : tensor_cores ? "tf32" : "float32", s.value_axis ? "value" : "key",
              s.seq, s.dk, s.dv, e_out, e_state, e_given, tol, ok ? "pass" : "FAIL");
}

// The log gates' gradient (gla_gate_gradient_launch): dg_t = sum_{u >= t}
// (a_u da_u - c_u dc_u) against the same sum in float64 on the CPU, for
// float64 and float32 inputs (a token-major da among them), dg written as
// float64, float32 or bf16; tolerances 1e-12, 1e-6 and 1e-2 of max |dg|.
template <typename T>
void check_gate_gradient(int B, int H, int T_len, int W, GlaElement dg_element) {
  Rng rng{99 + static_cast<uint64_t>(T_len)};
  const size_t n = static_cast<size_t>(B) * H * T_len * W;
  std::vector<double> x[4];
  for (auto& e : x) {
    e.resize(n);
    for (auto& v : e) v = static_cast<T>(rng.normal());  // the values the kernel reads
  }
  const GlaShape shape{B, H, T_len, W, W};
  std::vector<double> ref(n);
  for (int bh = 0; bh < B * H; ++bh)
    for (int d = 0; d < W; ++d) {
      double run = 0;
      for (int t = T_len - 1; t >= 0; --t) {
        const size_t i = (static_cast<size_t>(bh) * T_len + t) * W + d;
        run += x[0][i] * x[1][i] - x[2][i] * x[3][i];
        ref[i] = run;
      }
    }
  Device<T> a(n), da(n), c(n), dc(n);
  a.upload(x[0]);
  da.upload(token_major(x[1], shape, W));
  c.upload(x[2]);
  dc.upload(x[3]);
  const long long row = static_cast<long long>(H) * W;
  const auto element = sizeof(T) == 8 ? GlaElement::kFloat64 : GlaElement::kFloat32;
  bla::kernels::detail::GlaGateGradientArgs args;
  args.batch = B;
  args.heads = H;
  args.seq = T_len;
  args.width = W;
  args.dtype = sizeof(T) == 8 ? GlaDtype::kFloat64 : GlaDtype::kFloat32;
  args.a = {a.ptr, {}, element};
  args.da = {da.ptr, {row * T_len, W, row}, element};
  args.c = {c.ptr, {}, element};
  args.dc = {dc.ptr, {}, element};
  args.dg_element = dg_element;
  Device<double> totals(bla::kernels::detail::gla_gate_workspace_elements(B, H, T_len, W));
  totals.fill_nan();
  args.totals = totals.ptr;
  const char* out_name = dg_element == GlaElement::kFloat64    ? "float64"
                         : dg_element == GlaElement::kBFloat16 ? "bf16"
                                                               : "float32";
  auto run = [&](auto* element_type) {  // dg in that element type, NaN first where it has one
    using E = std::remove_pointer_t<decltype(element_type)>;
    Device<E> dg(n);
    if constexpr (!std::is_same_v<E, __nv_bfloat16>) dg.fill_nan();
    args.dg = dg.ptr;
    CHECK_CUDA(bla::kernels::detail::gla_gate_gradient_launch(args, nullptr));
    CHECK_CUDA(cudaDeviceSynchronize());
    return dg.download();
  };
  const std::vector<double> got = dg_element == GlaElement::kBFloat16  ? run(static_cast<__nv_bfloat16*>(nullptr))
                                  : dg_element == GlaElement::kFloat64 ? run(static_cast<double*>(nullptr))
                                                                       : run(static_cast<float*>(nullptr));
  const double err = max_relative(got, ref, ref);
  const double tol = dg_element == GlaElement::kBFloat16 ? 1e-2 : dg_element == GlaElement::kFloat64 ? 1e-12 : 1e-6;
  const bool ok = err < tol;
  failures += ok ? 0 : 1;
  std::printf("check gate gradient, in %-7s dg %-7s B=%d H=%d T=%-5d W=%-3d | %.2e (tol %.0e) %s\n",
              sizeof(T) == 8 ? "float64" : "float32", out_name, B, H, T_len, W, err, tol, ok ? "pass" : "FAIL");
}

void time_forward(GlaShape shape, int reps, bool tensor_cores) {
  const Problem p = make_problem(shape, -0.5, 7);
  Run<float> run(p);
  for (int i = 0; i < 3; ++i) CHECK_CUDA(run.launch(tensor_cores));
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  CHECK_CUDA(cudaEventRecord(start, nullptr));
  for (int i = 0; i < reps; ++i) CHECK_CUDA(run.launch(tensor_cores));
  CHECK_CUDA(cudaEventRecord(stop, nullptr));
  CHECK_CUDA(cudaEventSynchronize(stop));
  float ms = 0;
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  std::printf("[time] fwd %-7s %-5s B=%d T=%d H=%d Dk=%d Dv=%d | %.3f ms (mean of %d)\n",
              tensor_cores && shape.dk <= 64 && shape.dv <= 64 ? "tf32" : "float32", shape.value_axis ? "value" : "key",
              shape.batch, shape.seq, shape.heads, shape.dk, shape.dv, ms / reps,
              reps);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

}  // namespace

int main(int argc, char** argv) {
  int B = 2, H = 2, T = 150, dk = 64, dv = 48, reps = 20;
  bool bench = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (arg == "--B")
      B = value();
    else if (arg == "--H")
      H = value();
    else if (arg == "--T")
      T = value();
    else if (arg == "--dk")
      dk = value();
    else if (arg == "--dv")
      dv = value();
    else if (arg == "--reps")
      reps = value();
    else if (arg == "--no-bench")
      bench = false;
    else {
      std::fprintf(stderr, "usage: %s [--B n] [--H n] [--T n] [--dk n] [--dv n] [--reps n] [--no-bench]\n", argv[0]);
      return 2;
    }
  }
  for (const bool value_axis : {false, true}) {
    struct Named {
      const char* name;
      GlaShape shape;
      double g_low;
      bool tokens_first = false;  // q, k, v, g, o token-major in memory, through strides
      bool bf16_inputs = false;   // q, k, v, g read as bf16 (the values rounded to bf16 first)
    };
    const Named cases[] = {
        {"given shape", {B, H, T, dk, dv, value_axis}, -1.0},
        {"T < chunk", {1, H, std::max(1, std::min(T, 37)), dk, dv, value_axis}, -0.5},
        {"T = 1", {B, 1, 1, dk, dv, value_axis}, -0.3},
        {"strong decay", {1, H, T, dk, dv, value_axis}, -20.0},
        {"reversed", {B, H, T, dk, dv, value_axis, true}, -1.0},
        {"reversed, T < chunk", {1, H, std::max(1, std::min(T, 37)), dk, dv, value_axis, true}, -0.5},
        {"reversed, T = 1", {B, 1, 1, dk, dv, value_axis, true}, -0.3},
        {"token-major", {B, H, T, dk, dv, value_axis}, -1.0, true},
        {"token-major, reversed", {B, H, T, dk, dv, value_axis, true}, -1.0, true},
        {"bf16 inputs", {B, H, T, dk, dv, value_axis}, -1.0, false, true},
    };
    for (const auto& c : cases) {
      Problem p = make_problem(c.shape, c.g_low, 1 + c.shape.seq);
      if (c.bf16_inputs) {  // the reference sees the values the kernels read
        for (auto* x : {&p.q, &p.k, &p.v, &p.g})
          for (auto& e : *x) e = static_cast<double>(__bfloat162float(__float2bfloat16(static_cast<float>(e))));
      } else {
        check<double>(p, c.name, false, c.tokens_first);
      }
      check<float>(p, c.name, false, c.tokens_first, c.bf16_inputs);
      if (c.shape.dk <= 64 && c.shape.dv <= 64) check<float>(p, c.name, true, c.tokens_first, c.bf16_inputs);
    }
  }
  for (const int len : {T, 1, 64, 700}) {  // 700: three segments of the gate gradient's kernels, the last one cut
    check_gate_gradient<double>(B, H, len, dk, GlaElement::kFloat64);
    check_gate_gradient<float>(B, H, len, dk, GlaElement::kFloat32);
    check_gate_gradient<float>(B, H, len, dv, GlaElement::kBFloat16);
  }
  std::printf("checks: %s\n", failures == 0 ? "all passed" : (std::to_string(failures) + " FAILED").c_str());
  if (bench) {
    for (const int d : {64, 128})
      for (const bool value_axis : {false, true})
        for (const bool tensor_cores : {false, true})
          if (!tensor_cores || d <= 64) time_forward({4, 16, 8192, d, d, value_axis}, reps, tensor_cores);
  }
  return failures == 0 ? 0 : 1;
}
