// What the SWA kernel development programs (swa_forward_dev.cu,
// swa_backward_dev.cu) share: their options, random inputs, a float64 CPU
// reference of sliding-window attention, the error measure of the CUDA tests,
// and timing with CUDA events. Plain C++ and the CUDA runtime: no LibTorch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "swa_launch.h"

namespace swa_dev {

using bla::kernels::detail::SwaShape;

// Ends the program with a message when a CUDA call failed: a development
// program has nothing to recover.
inline void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  std::fprintf(stderr, "CUDA error in %s: %s\n", what, cudaGetErrorString(err));
  std::exit(1);
}

struct Options {
  int dim = 0;        // 0: both 64 and 128
  int batch = 4, seq = 8192, heads = 0, window = 512;  // the timed shape; heads 0: 1024 / dim
  bool bias = false;  // time with a per-token bias (GatedFWA)
  std::string variant;  // empty: every variant
  int warmup = 5, reps = 30, sets = 3;
  bool check = true, time = true;
};

inline std::string usage_text(const char* program) {
  return std::string("usage: ") + program + R"( [options]
Checks every variant against a float64 CPU reference, then times it.
  --dim 64|128     head dim                                   [both]
  --variant ID     one variant: a number, simt or production  [all]
  --batch N [4]  --seq N [8192]  --heads N [1024 / dim]  --window N [512]   (timed shape)
  --bias           time with a per-token logit bias (GatedFWA)
  --warmup N [5]  --reps N [30]  --sets N [3]
  --no-check       time only     --no-time   check only
)";
}

inline Options parse_options(int argc, char** argv) {
  const std::string path = argc > 0 ? argv[0] : "program";
  const std::string text = usage_text(path.substr(path.find_last_of('/') + 1).c_str());
  const char* usage = text.c_str();
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n%s", a.c_str(), usage);
        std::exit(2);
      }
      return argv[++i];
    };
    auto number = [&]() {
      const char* text = value();
      char* end = nullptr;
      const long x = std::strtol(text, &end, 10);
      if (*end != '\0' || end == text || x < 0 || x > (1L << 30)) {
        std::fprintf(stderr, "%s wants a non-negative integer, got '%s'\n", a.c_str(), text);
        std::exit(2);
      }
      return static_cast<int>(x);
    };
    if (a == "--dim") o.dim = number();
    else if (a == "--batch") o.batch = number();
    else if (a == "--seq") o.seq = number();
    else if (a == "--heads") o.heads = number();
    else if (a == "--window") o.window = number();
    else if (a == "--bias") o.bias = true;
    else if (a == "--variant") o.variant = value();
    else if (a == "--warmup") o.warmup = number();
    else if (a == "--reps") o.reps = number();
    else if (a == "--sets") o.sets = number();
    else if (a == "--no-check") o.check = false;
    else if (a == "--no-time") o.time = false;
    else if (a == "-h" || a == "--help") {
      std::printf("%s", usage);
      std::exit(0);
    } else {
      std::fprintf(stderr, "unknown option '%s'\n%s", a.c_str(), usage);
      std::exit(2);
    }
  }
  if (o.dim != 0 && o.dim != 64 && o.dim != 128) {
    std::fprintf(stderr, "--dim must be 64 or 128\n");
    std::exit(2);
  }
  if (o.batch < 1 || o.seq < 1 || o.reps < 1 || o.sets < 1) {
    std::fprintf(stderr, "--batch, --seq, --reps and --sets must be >= 1\n");
    std::exit(2);
  }
  return o;
}

// The kernels' shape with the window normalised as the library does: 0 or
// at least the sequence means full causal attention.
inline SwaShape make_shape(int batch, int seq, int heads, int dim, int window) {
  SwaShape s;
  s.batch = batch;
  s.seq = seq;
  s.heads = heads;
  s.dim = dim;
  s.window = (window <= 0 || window >= seq) ? seq : window;
  s.scale = 1.f / std::sqrt(static_cast<float>(dim));
  return s;
}

// Elements of a (B, T, H, D) tensor, and of a (B, T, H) or (B, H, T) one.
inline size_t numel(const SwaShape& s) { return static_cast<size_t>(s.batch) * s.seq * s.heads * s.dim; }
inline size_t tokens(const SwaShape& s) { return static_cast<size_t>(s.batch) * s.seq * s.heads; }

// Shapes the variants are checked on: the edges of the tiles and the window
// (those of tests/cuda/swa_kernel_test.cpp), at either head dim.
struct CheckCase {
  const char* name;
  int batch, seq, heads, window;
  bool bias;
};
inline const std::vector<CheckCase>& check_cases() {
  static const std::vector<CheckCase> cases = {
      {"odd_seq", 2, 100, 3, 32, false},         {"seq_below_window", 1, 77, 2, 200, false},
      {"window_eq_seq", 2, 130, 2, 130, false},  {"full_causal", 1, 200, 2, 0, false},
      {"gate_bias", 2, 150, 2, 40, true},        {"long", 2, 1000, 3, 256, false},
      {"long_bias", 1, 777, 2, 300, true},       {"single_token", 1, 1, 1, 4, false},
      {"window_one", 1, 50, 1, 1, false},
  };
  return cases;
}

// ---- inputs ------------------------------------------------------------------

// bf16 bits <-> float (bf16 is the top half of a float32).
inline float bf16_value(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// SplitMix64's output function: a counter-based source of random bits.
__host__ __device__ inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// Standard normal number `index` of stream `seed` (Box-Muller): the same
// inputs on every machine, drawn on the device without a host copy.
__host__ __device__ inline float normal_at(uint64_t seed, uint64_t index) {
  const uint64_t a = mix64(seed * 0x9e3779b97f4a7c15ull + 2 * index + 1);
  const uint64_t b = mix64(seed * 0x9e3779b97f4a7c15ull + 2 * index + 2);
  const double u1 = (static_cast<double>(a >> 11) + 1.0) * 0x1p-53;  // (0, 1]
  const double u2 = static_cast<double>(b >> 11) * 0x1p-53;
  return static_cast<float>(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
static __global__ void fill_normal_bf16(__nv_bfloat16* x, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    x[i] = __float2bfloat16_rn(normal_at(seed, i));
}

// ---- device memory -------------------------------------------------------------

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) { check(cudaMalloc(&ptr_, bytes), "cudaMalloc"); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  void* get() const { return ptr_; }
  float* floats() const { return static_cast<float*>(ptr_); }
  // NaN in bf16 and float32 alike: an element a kernel leaves unwritten fails the check.
  void poison() const { check(cudaMemset(ptr_, 0xff, bytes_), "cudaMemset"); }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

inline DeviceBuffer to_device_f32(const std::vector<float>& x) {
  DeviceBuffer d(x.size() * 4);
  check(cudaMemcpy(d.get(), x.data(), x.size() * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
  return d;
}
inline std::vector<float> from_device_bf16(const DeviceBuffer& d, size_t n) {
  std::vector<uint16_t> bits(n);
  check(cudaMemcpy(bits.data(), d.get(), n * 2, cudaMemcpyDeviceToHost), "cudaMemcpy");
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = bf16_value(bits[i]);
  return x;
}
inline std::vector<float> from_device_f32(const DeviceBuffer& d, size_t n) {
  std::vector<float> x(n);
  check(cudaMemcpy(x.data(), d.get(), n * 4, cudaMemcpyDeviceToHost), "cudaMemcpy");
  return x;
}

// One input set on the device: q, k, v, grad_out (B, T, H, D) bf16, standard
// normal; bias (B, T, H) float32, the cumulative log of a forget gate
// (GatedFWA), when asked for.
struct DeviceInputs {
  SwaShape shape;
  DeviceBuffer q, k, v, grad_out, bias;
  bool has_bias = false;
};

inline DeviceInputs random_inputs(const SwaShape& shape, bool bias, uint64_t seed) {
  DeviceInputs d;
  d.shape = shape;
  const size_t n = numel(shape);
  uint64_t stream = seed * 8;
  for (auto* x : {&d.q, &d.k, &d.v, &d.grad_out}) {
    *x = DeviceBuffer(n * 2);
    fill_normal_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(x->get()), n, stream++);
    check(cudaGetLastError(), "fill_normal_bf16");
  }
  d.has_bias = bias;
  if (bias) {
    std::vector<float> host(tokens(shape));
    uint64_t index = 0;
    for (int b = 0; b < shape.batch; ++b)
      for (int h = 0; h < shape.heads; ++h) {
        double sum = 0;
        for (int t = 0; t < shape.seq; ++t) {
          const double x = normal_at(stream, index++) + 3.0;
          sum -= std::log1p(std::exp(-x));  // log sigmoid(x)
          host[(static_cast<size_t>(b) * shape.seq + t) * shape.heads + h] = static_cast<float>(sum);
        }
      }
    d.bias = to_device_f32(host);
  }
  return d;
}

// The same set on the host, for the reference: the bf16 values as floats.
struct HostInputs {
  SwaShape shape;
  std::vector<float> q, k, v, grad_out, bias;
};

inline HostInputs to_host(const DeviceInputs& d) {
  HostInputs h;
  h.shape = d.shape;
  const size_t n = numel(d.shape);
  h.q = from_device_bf16(d.q, n);
  h.k = from_device_bf16(d.k, n);
  h.v = from_device_bf16(d.v, n);
  h.grad_out = from_device_bf16(d.grad_out, n);
  if (d.has_bias) h.bias = from_device_f32(d.bias, tokens(d.shape));
  return h;
}

// The arguments' fields the forward and the backward share, for one input set.
template <typename Args>
Args input_args(const DeviceInputs& in) {
  Args a;
  a.shape = in.shape;
  a.dtype = bla::kernels::detail::SwaDtype::kBFloat16;
  a.q = in.q.get();
  a.k = in.k.get();
  a.v = in.v.get();
  a.bias = in.has_bias ? in.bias.floats() : nullptr;
  return a;
}

// The forward's arguments: out (B, T, H, D) bf16, lse (B, H, T) float32.
inline bla::kernels::detail::SwaForwardArgs forward_args(const DeviceInputs& in, const DeviceBuffer& out,
                                                         const DeviceBuffer& lse) {
  auto a = input_args<bla::kernels::detail::SwaForwardArgs>(in);
  a.out = out.get();
  a.lse = lse.floats();
  return a;
}

// ---- reference -----------------------------------------------------------------

// Sliding-window attention in float64, straight from the definition
// (docs/bla.md, "N = W": query t sees keys t - W < s <= t; logits
// scale <q_t, k_s> + bias[t] - bias[s]), one query row at a time.
struct Reference {
  std::vector<double> out, lse, dq, dk, dv, dbias;
};

inline Reference reference(const HostInputs& in, bool backward) {
  const SwaShape& sh = in.shape;
  const int B = sh.batch, T = sh.seq, H = sh.heads, D = sh.dim, W = sh.window;
  const size_t n = numel(sh);
  auto row = [&](int b, int t, int h) { return ((static_cast<size_t>(b) * T + t) * H + h) * D; };
  auto tok = [&](int b, int t, int h) { return (static_cast<size_t>(b) * T + t) * H + h; };
  Reference r;
  r.out.assign(n, 0.0);
  r.lse.assign(tokens(sh), 0.0);  // (B, H, T)
  if (backward) {
    r.dq.assign(n, 0.0);
    r.dk.assign(n, 0.0);
    r.dv.assign(n, 0.0);
    if (!in.bias.empty()) r.dbias.assign(tokens(sh), 0.0);
  }
  std::vector<double> p(W), dp(W);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int t = 0; t < T; ++t) {
        const int first = std::max(0, t - W + 1), count = t - first + 1;
        const float* q = &in.q[row(b, t, h)];
        double max_logit = -INFINITY;
        for (int j = 0; j < count; ++j) {
          const float* k = &in.k[row(b, first + j, h)];
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += static_cast<double>(q[d]) * k[d];
          double z = dot * sh.scale;
          if (!in.bias.empty()) z += static_cast<double>(in.bias[tok(b, t, h)]) - in.bias[tok(b, first + j, h)];
          p[j] = z;
          max_logit = std::max(max_logit, z);
        }
        double sum = 0;
        for (int j = 0; j < count; ++j) sum += std::exp(p[j] - max_logit);
        for (int j = 0; j < count; ++j) p[j] = std::exp(p[j] - max_logit) / sum;
        r.lse[(static_cast<size_t>(b) * H + h) * T + t] = max_logit + std::log(sum);
        double* o = &r.out[row(b, t, h)];
        for (int j = 0; j < count; ++j) {
          const float* v = &in.v[row(b, first + j, h)];
          for (int d = 0; d < D; ++d) o[d] += p[j] * v[d];
        }
        if (!backward) continue;
        // dP = dO V^T, dZ = P (dP - <P, dP>); dQ = scale dZ K, dK = scale dZ^T Q,
        // dV = P^T dO, d bias[t] += sum_s dZ, d bias[s] -= dZ.
        const float* g = &in.grad_out[row(b, t, h)];
        double delta = 0;
        for (int j = 0; j < count; ++j) {
          const float* v = &in.v[row(b, first + j, h)];
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += static_cast<double>(g[d]) * v[d];
          dp[j] = dot;
          delta += p[j] * dot;
        }
        double* dq = &r.dq[row(b, t, h)];
        for (int j = 0; j < count; ++j) {
          const int s = first + j;
          const double dz = p[j] * (dp[j] - delta);
          const float* k = &in.k[row(b, s, h)];
          double* dk = &r.dk[row(b, s, h)];
          double* dv = &r.dv[row(b, s, h)];
          for (int d = 0; d < D; ++d) {
            dq[d] += sh.scale * dz * k[d];
            dk[d] += sh.scale * dz * q[d];
            dv[d] += p[j] * g[d];
          }
          if (!r.dbias.empty()) {
            r.dbias[tok(b, t, h)] += dz;
            r.dbias[tok(b, s, h)] -= dz;
          }
        }
      }
  return r;
}

// ||x - ref|| / ||ref|| (tests/cuda/swa_kernel_test.cpp's measure); infinite
// when any element is not finite (a NaN left from the poison: never written).
inline double relative_error(const std::vector<float>& x, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) return INFINITY;
    diff += (x[i] - ref[i]) * (x[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff) / (norm > 0 ? std::sqrt(norm) : 1.0);
}

// The tests' tolerance for bf16 inputs on every output and gradient.
constexpr double kTolerance = 1e-2;

// ---- timing ------------------------------------------------------------------

// Median milliseconds of body(set) over reps after warm-up, CUDA events on the
// default stream; reps cycle over the input sets so no rep reads its inputs
// from a cache the previous one warmed. body returns its launch error; on an
// error the time is NaN and the error is printed.
inline double median_ms(const std::function<cudaError_t(int)>& body, const Options& o) {
  cudaError_t err = cudaSuccess;
  for (int i = 0; i < o.warmup && err == cudaSuccess; ++i) err = body(i % o.sets);
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<float> times;
  for (int r = 0; r < o.reps && err == cudaSuccess; ++r) {
    check(cudaEventRecord(start), "cudaEventRecord");
    err = body(r % o.sets);
    check(cudaEventRecord(stop), "cudaEventRecord");
    if (err == cudaSuccess) err = cudaEventSynchronize(stop);
    float ms = 0.f;
    if (err == cudaSuccess) err = cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (err != cudaSuccess) {
    std::fprintf(stderr, "timing stopped: %s\n", cudaGetErrorString(err));
    return NAN;
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Visible (query, key) pairs of the whole problem: sum over t of min(t + 1, W).
inline double visible_pairs(const SwaShape& s) {
  const double T = s.seq, W = s.window;
  return static_cast<double>(s.batch) * s.heads * (W * (W + 1) / 2 + (T - W) * W);
}

// What the compiler and the occupancy calculator say of one kernel.
struct Resources {
  int registers = 0, local_bytes = 0, blocks_per_sm = 0;
  size_t smem = 0;
};
template <typename Kernel>
Resources kernel_resources(Kernel kernel, int threads, size_t dynamic_smem) {
  Resources r;
  cudaFuncAttributes attr;
  check(cudaFuncGetAttributes(&attr, kernel), "cudaFuncGetAttributes");
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(dynamic_smem)),
        "cudaFuncSetAttribute");
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&r.blocks_per_sm, kernel, threads, dynamic_smem),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  r.registers = attr.numRegs;
  r.local_bytes = static_cast<int>(attr.localSizeBytes);
  r.smem = dynamic_smem + attr.sharedSizeBytes;
  return r;
}
inline std::string describe(const Resources& r) {
  char text[96];
  std::snprintf(text, sizeof text, "%3d regs %3d B local %6zu B smem %d blk/SM", r.registers, r.local_bytes, r.smem,
                r.blocks_per_sm);
  return text;
}

inline void print_device() {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  std::printf("device: %s, %d SMs, %d KB shared memory per SM\n", prop.name, prop.multiProcessorCount,
              static_cast<int>(prop.sharedMemPerMultiprocessor / 1024));
}

// One variant of a kernel: Args is SwaForwardArgs or SwaBackwardArgs.
template <typename Args>
struct Variant {
  std::string id, tiles;
  cudaError_t (*launch)(const Args&, cudaStream_t);
  std::string (*resources)();  // null for the production launcher (it runs one of the others)
};

// The launcher production calls (swa_forward_launch or swa_backward_launch)
// for one kernel family: "production" runs the tensor-core tiles chosen per
// head dim, "simt" the SIMT kernels.
template <typename Args, cudaError_t (*LAUNCH)(const Args&, bla::kernels::detail::SwaFamily, cudaStream_t)>
Variant<Args> production_variant(const char* what) {
  return {"production", what,
          [](const Args& a, cudaStream_t s) { return LAUNCH(a, bla::kernels::detail::SwaFamily::kTensorCore, s); },
          nullptr};
}
template <typename Args, cudaError_t (*LAUNCH)(const Args&, bla::kernels::detail::SwaFamily, cudaStream_t)>
Variant<Args> simt_variant(const char* what, std::string (*resources)()) {
  return {"simt", what,
          [](const Args& a, cudaStream_t s) { return LAUNCH(a, bla::kernels::detail::SwaFamily::kSimt, s); },
          resources};
}

// ---- the program ---------------------------------------------------------------

// A program's run: for each head dim asked for, the variants --variant names
// (all when it is empty), each checked (check_variants returns, per variant, why it
// failed: empty when it passed), then timed. The exit status: 1 when a
// variant failed its check, 2 when --variant names one no head dim has.
template <typename Args, typename Check, typename Time>
int run_program(const Options& o, std::vector<Variant<Args>> (*variants_64)(),
                std::vector<Variant<Args>> (*variants_128)(), Check check_variants, Time time_variants) {
  print_device();
  bool failed = false, found = false;
  for (int dim : o.dim == 0 ? std::vector<int>{64, 128} : std::vector<int>{o.dim}) {
    std::vector<Variant<Args>> list = dim == 64 ? variants_64() : variants_128();
    if (!o.variant.empty())
      list.erase(std::remove_if(list.begin(), list.end(), [&](const auto& v) { return v.id != o.variant; }),
                 list.end());
    if (list.empty()) {
      std::printf("\n== D=%d: no variant '%s'\n", dim, o.variant.c_str());
      continue;
    }
    found = true;
    const std::vector<std::string> failure =
        o.check ? check_variants(dim, list) : std::vector<std::string>(list.size());
    if (o.time) time_variants(dim, list, failure, o);
    failed = failed || std::any_of(failure.begin(), failure.end(), [](const std::string& f) { return !f.empty(); });
  }
  return failed ? 1 : found ? 0 : 2;
}

}  // namespace swa_dev
