// Development harness for the SSD (Mamba2-like) kernels, in the manner of
// llm.c's dev/cuda: every version of ssd_chunk_kernels.cuh held to the CPU
// float64 reference of ssd_reference.h on random inputs (fixed seed), then
// timed at a large shape; and production's launch (../ssd_kernels.cu,
// included below: one translation unit) as training calls it, forward and
// as a gradient pass. Standalone CUDA, no LibTorch:
//   nvcc -std=c++17 -arch=sm_90 -O3 -o ssd_chunk_dev kernels/dev/ssd_chunk_dev.cu
//   ./ssd_chunk_dev [--B 2 --T 1024 --H 8 --P 64 --N 64 --G 1 --chunk 64]
//                   [--bench-B 4 --bench-T 8192 --bench-H 16] [--reps 20] [--seed 1234]
//                   [--no-check] [--no-bench] [--no-backward] [--only CASE]
// Prints PASS/FAIL per check (exit status 1 if any failed), then ms and
// GB/s per version, GB/s counting only the bytes of inputs and outputs (the
// memory floor: workspaces are not counted).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../ssd_kernels.cu"
#include "ssd_chunk_kernels.cuh"
#include "ssd_reference.h"

namespace ssd_dev {
namespace {

#define CUDA_CHECK(call)                                                                               \
  do {                                                                                                 \
    const cudaError_t err_ = (call);                                                                   \
    if (err_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(err_), __FILE__, __LINE__, \
                   cudaGetErrorString(err_));                                                          \
      std::exit(2);                                                                                    \
    }                                                                                                  \
  } while (0)

// ---- host data ---------------------------------------------------------------

struct Rng {  // splitmix64: the same inputs on every machine for a seed
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * (next() >> 11) * (1.0 / 9007199254740992.0); }
};

uint16_t bf16_bits(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float bf16_value(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
float round_bf16(float f) { return bf16_value(bf16_bits(f)); }

// x, B, C, h0 uniform in [-1, 1]; dt = softplus(U(-6, -1)) in (0.0025, 0.31);
// A = -U(0.5, 8): per-token decays from exp(-0.001) to exp(-2.5), so some
// heads carry state across many chunks and others forget within one.
template <typename Real>
SsdInputsOf<Real> make_inputs(const SsdShape& s, uint64_t seed, bool has_D, bool has_h0) {
  Rng rng(seed);
  SsdInputsOf<Real> in;
  auto fill = [&](std::vector<Real>& v, size_t n, double lo, double hi) {
    v.resize(n);
    for (auto& e : v) e = static_cast<Real>(rng.uniform(lo, hi));
  };
  fill(in.x, s.x_size(), -1, 1);
  in.dt.resize(s.dt_size());
  for (auto& e : in.dt) e = static_cast<Real>(std::log1p(std::exp(rng.uniform(-6, -1))));
  fill(in.A, s.heads, -8, -0.5);
  fill(in.Bm, s.bc_size(), -1, 1);
  fill(in.Cm, s.bc_size(), -1, 1);
  if (has_D) fill(in.D, s.heads, -1, 1);
  if (has_h0) fill(in.h0, s.state_size(), -1, 1);
  return in;
}

// The per-token log decays dt A (B, T, H) that v2 and v3 read.
std::vector<float> log_decays(const SsdShape& s, const SsdInputs& in) {
  std::vector<float> out(s.dt_size());
  for (int b = 0; b < s.batch; ++b)
    for (int t = 0; t < s.seq; ++t)
      for (int h = 0; h < s.heads; ++h) out[s.dt_at(b, t, h)] = in.dt[s.dt_at(b, t, h)] * in.A[h];
  return out;
}

void round_inputs_bf16(SsdInputs& in) {
  for (auto* v : {&in.x, &in.Bm, &in.Cm})
    for (auto& e : *v) e = round_bf16(e);
}

// ---- device data -------------------------------------------------------------

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t count = 0;
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) { resize(n); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr != nullptr) cudaFree(ptr);
  }
  void resize(size_t n) {
    if (ptr != nullptr) CUDA_CHECK(cudaFree(ptr));
    ptr = nullptr;
    count = n;
    if (n > 0) CUDA_CHECK(cudaMalloc(&ptr, n * sizeof(T)));
  }
  T* get() const { return count > 0 ? ptr : nullptr; }
};

template <typename T>
T to_device_type(float v);
template <>
float to_device_type<float>(float v) {
  return v;
}
template <>
__nv_bfloat16 to_device_type<__nv_bfloat16>(float v) {
  __nv_bfloat16_raw raw;
  raw.x = bf16_bits(v);
  return __nv_bfloat16(raw);
}
float to_host_float(float v) { return v; }
float to_host_float(__nv_bfloat16 v) {
  const __nv_bfloat16_raw raw(v);
  return bf16_value(raw.x);
}

template <typename T>
void upload(DeviceBuffer<T>& dst, const std::vector<float>& src) {
  dst.resize(src.size());
  if (src.empty()) return;
  std::vector<T> host(src.size());
  for (size_t i = 0; i < src.size(); ++i) host[i] = to_device_type<T>(src[i]);
  CUDA_CHECK(cudaMemcpy(dst.ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
}

template <typename T>
std::vector<float> download(const DeviceBuffer<T>& src) {
  std::vector<T> host(src.count);
  if (src.count > 0) CUDA_CHECK(cudaMemcpy(host.data(), src.ptr, src.count * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<float> out(src.count);
  for (size_t i = 0; i < src.count; ++i) out[i] = to_host_float(host[i]);
  return out;
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

SsdDims make_dims(const SsdShape& s, int chunk) {
  return SsdDims{s.batch, s.seq, s.heads, s.head_dim, s.groups, s.d_state, chunk, ceil_div(s.seq, chunk)};
}

// Inputs, outputs and workspaces of one problem; the workspaces are sized for
// the smallest chunk any version runs (the most chunks).
template <typename T>
struct DeviceProblem {
  SsdShape shape;
  DeviceBuffer<T> x, Bm, Cm, y;
  DeviceBuffer<float> dt, A, log_decay, D, h0, final_state, states, totals;

  DeviceProblem(const SsdShape& s, const SsdInputs& in, int min_chunk) : shape(s) {
    upload(x, in.x);
    upload(Bm, in.Bm);
    upload(Cm, in.Cm);
    upload(dt, in.dt);
    upload(A, in.A);
    upload(log_decay, log_decays(s, in));
    upload(D, in.D);
    upload(h0, in.h0);
    y.resize(s.x_size());
    final_state.resize(s.state_size());
    const size_t chunks = static_cast<size_t>(ceil_div(s.seq, std::min(min_chunk, s.seq)));
    states.resize(static_cast<size_t>(s.batch) * s.heads * chunks * s.d_state * s.head_dim);
    totals.resize(static_cast<size_t>(s.batch) * s.heads * chunks);
  }

  SsdForwardArgs<T> args(int chunk) const {
    return SsdForwardArgs<T>{x.get(),
                             dt.get(),
                             A.get(),
                             log_decay.get(),
                             Bm.get(),
                             Cm.get(),
                             D.get(),
                             h0.get(),
                             y.get(),
                             final_state.get(),
                             states.get(),
                             totals.get(),
                             make_dims(shape, chunk)};
  }

  void poison_outputs() {  // all-ones bytes are NaN in float and bf16: unwritten outputs fail the check
    CUDA_CHECK(cudaMemset(y.ptr, 0xff, y.count * sizeof(T)));
    CUDA_CHECK(cudaMemset(final_state.ptr, 0xff, final_state.count * sizeof(float)));
  }
};

// ---- launches ----------------------------------------------------------------

size_t g_smem_limit = 0;  // the device's opt-in shared memory per block

template <typename Kernel>
void allow_smem(Kernel* kernel, size_t bytes) {
  static std::map<const void*, size_t> allowed;
  const void* entry = reinterpret_cast<const void*>(kernel);
  size_t& have = allowed[entry];
  if (bytes > have) {
    CUDA_CHECK(cudaFuncSetAttribute(entry, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    have = bytes;
  }
}

void check_launch() { CUDA_CHECK(cudaGetLastError()); }

// Optional per-kernel timing: an event before each kernel of a version and
// one at its end; durations summed by name over calls.
struct Stages {
  bool on = false;
  std::vector<std::pair<std::string, cudaEvent_t>> marks;
  void mark(const char* name) {
    if (!on) return;
    cudaEvent_t e;
    CUDA_CHECK(cudaEventCreate(&e));
    CUDA_CHECK(cudaEventRecord(e));
    marks.emplace_back(name, e);
  }
  // Name -> total ms, in first-seen order; "end" marks close a call.
  std::vector<std::pair<std::string, double>> totals() {
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<std::pair<std::string, double>> out;
    for (size_t i = 0; i + 1 < marks.size(); ++i) {
      if (marks[i].first == "end") continue;
      float ms = 0.f;
      CUDA_CHECK(cudaEventElapsedTime(&ms, marks[i].second, marks[i + 1].second));
      auto it = std::find_if(out.begin(), out.end(), [&](auto& p) { return p.first == marks[i].first; });
      if (it == out.end())
        out.emplace_back(marks[i].first, ms);
      else
        it->second += ms;
    }
    for (auto& m : marks) CUDA_CHECK(cudaEventDestroy(m.second));
    marks.clear();
    return out;
  }
};
Stages g_stages;

enum class Version { kRecurrent, kChunkSimt, kChunkTensorCore, kLongChunkTensorCore };
const char* version_name(Version v) {
  switch (v) {
    case Version::kRecurrent:
      return "v0-recurrent";
    case Version::kChunkSimt:
      return "v1-chunk-simt";
    case Version::kChunkTensorCore:
      return "v2-chunk-tc";
    case Version::kLongChunkTensorCore:
      return "v3-longchunk-tc";
  }
  return "?";
}

// A version and the chunk it is asked for.
struct Variant {
  Version version;
  int chunk;
};

// Every variant checked and timed: v1 at the requested chunk, v2 at its 64,
// v3 at each of its chunks.
std::vector<Variant> all_variants(int chunk) {
  return {{Version::kRecurrent, chunk},          {Version::kChunkSimt, chunk},
          {Version::kChunkTensorCore, kTcChunk}, {Version::kLongChunkTensorCore, 64},
          {Version::kLongChunkTensorCore, 128},  {Version::kLongChunkTensorCore, 256}};
}

template <typename T>
std::string launch_v0(const SsdForwardArgs<T>& a) {
  const SsdDims& s = a.s;
  if (s.head_dim > 1024) return "v0 needs P <= 1024";
  const dim3 grid(s.heads, s.batch);
  g_stages.mark("recurrent");
  switch (s.d_state) {
    case 16:
      DEV_LAUNCH(grid, s.head_dim, 0, ssd_v0_recurrent<T, 16>)(a);
      break;
    case 32:
      DEV_LAUNCH(grid, s.head_dim, 0, ssd_v0_recurrent<T, 32>)(a);
      break;
    case 64:
      DEV_LAUNCH(grid, s.head_dim, 0, ssd_v0_recurrent<T, 64>)(a);
      break;
    case 128:
      DEV_LAUNCH(grid, s.head_dim, 0, ssd_v0_recurrent<T, 128>)(a);
      break;
    default:
      return "v0 is compiled for N in {16, 32, 64, 128}";
  }
  check_launch();
  g_stages.mark("end");
  return "";
}

// The forward scan every chunked version shares (SsdForwardArgs or SsdArgs).
template <typename Args>
void launch_state_pass(const Args& a) {
  const SsdDims& s = a.s;
  g_stages.mark("state_pass");
  DEV_LAUNCH(dim3(ceil_div(s.d_state * s.head_dim, kThreads), s.heads, s.batch), kThreads, 0, ssd_state_scan)
  (a.states, a.totals, a.h0, a.final_state, s);
  check_launch();
}

template <typename T>
std::string launch_v1(const SsdForwardArgs<T>& a) {
  const SsdDims& s = a.s;
  const size_t state_bytes = ssd_v1_state_smem(s.chunk, s.d_state, s.head_dim);
  const size_t out_bytes = ssd_v1_output_smem(s.chunk, s.d_state, s.head_dim);
  if (std::max(state_bytes, out_bytes) > g_smem_limit)
    return "v1 needs " + std::to_string(std::max(state_bytes, out_bytes)) + " bytes of shared memory at chunk " +
           std::to_string(s.chunk) + "; the device has " + std::to_string(g_smem_limit);
  allow_smem(ssd_v1_chunk_state<T, false>, state_bytes);
  allow_smem(ssd_v1_chunk_output<T>, out_bytes);
  const dim3 chunks(s.nchunks, s.heads, s.batch);
  g_stages.mark("chunk_state");
  DEV_LAUNCH(chunks, kThreads, state_bytes, ssd_v1_chunk_state<T, false>)(a.Bm, a.x, a.dt, a.A, a.states, a.totals, s);
  check_launch();
  launch_state_pass(a);
  g_stages.mark("chunk_output");
  DEV_LAUNCH(chunks, kThreads, out_bytes, ssd_v1_chunk_output<T>)(a);
  check_launch();
  g_stages.mark("end");
  return "";
}

template <typename T, int N, int P>
std::string launch_v2_shape(const SsdForwardArgs<T>& a) {
  using Lay = TcLayout<T, N, P>;
  if (Lay::kOutBytes > g_smem_limit)
    return "v2 needs " + std::to_string(Lay::kOutBytes) + " bytes of shared memory; the device has " +
           std::to_string(g_smem_limit);
  allow_smem(ssd_v2_chunk_state<T, N, P>, Lay::kStateBytes);
  allow_smem(ssd_v2_chunk_output<T, N, P>, Lay::kOutBytes);
  const SsdDims& s = a.s;
  const dim3 chunks(s.nchunks, s.heads, s.batch);
  g_stages.mark("chunk_state_tc");
  DEV_LAUNCH(chunks, kThreads, Lay::kStateBytes, ssd_v2_chunk_state<T, N, P>)(a);
  check_launch();
  launch_state_pass(a);
  g_stages.mark("chunk_output_tc");
  DEV_LAUNCH(chunks, kThreads, Lay::kOutBytes, ssd_v2_chunk_output<T, N, P>)(a);
  check_launch();
  g_stages.mark("end");
  return "";
}

template <typename T>
std::string launch_v2(const SsdForwardArgs<T>& a) {
  if (a.s.chunk != kTcChunk) return "v2 runs chunk 64 only";
  const int N = a.s.d_state, P = a.s.head_dim;
  if (N == 64 && P == 64) return launch_v2_shape<T, 64, 64>(a);
  if (N == 64 && P == 128) return launch_v2_shape<T, 64, 128>(a);
  if (N == 128 && P == 64) return launch_v2_shape<T, 128, 64>(a);
  if (N == 128 && P == 128) return launch_v2_shape<T, 128, 128>(a);
  return "v2 is compiled for N, P in {64, 128}";
}

template <typename T, int CHUNK, int N, int P>
std::string launch_v3_shape(const SsdForwardArgs<T>& d) {
  using Lay = TcLayout<T, N, P, CHUNK>;
  // The production kernels' arguments: log decay dt A, key scale dt.
  const SsdArgs<T> a{d.x, d.log_decay, d.dt, d.Bm, d.Cm, d.D, d.h0, d.y, d.final_state, d.states, d.totals, d.s};
  if (Lay::kOutBytes > g_smem_limit)
    return "v3 needs " + std::to_string(Lay::kOutBytes) + " bytes of shared memory; the device has " +
           std::to_string(g_smem_limit);
  allow_smem(ssd_chunk_state<T, T, CHUNK, N, P>, Lay::kStateBytes);
  allow_smem(ssd_chunk_output<T, T, CHUNK, N, P>, Lay::kOutBytes);
  const SsdDims& s = a.s;
  g_stages.mark("chunk_state_tc");
  DEV_LAUNCH(dim3(s.nchunks, s.heads, s.batch), kThreads, Lay::kStateBytes, ssd_chunk_state<T, T, CHUNK, N, P>)(a);
  check_launch();
  launch_state_pass(a);
  g_stages.mark("chunk_output_tc");
  DEV_LAUNCH(dim3(s.nchunks * (CHUNK / kTcChunk), s.heads, s.batch), kThreads, Lay::kOutBytes,
             ssd_chunk_output<T, T, CHUNK, N, P>)
  (a);
  check_launch();
  g_stages.mark("end");
  return "";
}

template <typename T, int CHUNK>
std::string launch_v3_chunk(const SsdForwardArgs<T>& a) {
  const int N = a.s.d_state, P = a.s.head_dim;
  if (N == 64 && P == 64) return launch_v3_shape<T, CHUNK, 64, 64>(a);
  if (N == 64 && P == 128) return launch_v3_shape<T, CHUNK, 64, 128>(a);
  if (N == 128 && P == 64) return launch_v3_shape<T, CHUNK, 128, 64>(a);
  if (N == 128 && P == 128) return launch_v3_shape<T, CHUNK, 128, 128>(a);
  return "v3 is compiled for N, P in {64, 128}";
}

template <typename T>
std::string launch_v3(const SsdForwardArgs<T>& a) {
  switch (a.s.chunk) {
    case 64:
      return launch_v3_chunk<T, 64>(a);
    case 128:
      return launch_v3_chunk<T, 128>(a);
    case 256:
      return launch_v3_chunk<T, 256>(a);
  }
  return "v3 is compiled for chunks 64, 128 and 256";
}

// The chunk a variant runs: v1 as the op (a sequence shorter than the chunk
// is one unpadded chunk); v2 and v3 their compiled chunk, padded; 0 for v0.
int run_chunk(const Variant& v, int seq) {
  switch (v.version) {
    case Version::kRecurrent:
      return 0;
    case Version::kChunkSimt:
      return std::max(1, std::min(v.chunk, seq));
    case Version::kChunkTensorCore:
    case Version::kLongChunkTensorCore:
      return v.chunk;
  }
  return v.chunk;
}

// Runs one variant; returns why it cannot run this problem, or "" once launched.
template <typename T>
std::string run_forward(const Variant& v, const DeviceProblem<T>& d) {
  const auto a = d.args(std::max(1, run_chunk(v, d.shape.seq)));
  switch (v.version) {
    case Version::kRecurrent:
      return launch_v0(a);
    case Version::kChunkSimt:
      return launch_v1(a);
    case Version::kChunkTensorCore:
      return launch_v2(a);
    case Version::kLongChunkTensorCore:
      return launch_v3(a);
  }
  return "unknown version";
}

// ---- backward (v1) -----------------------------------------------------------

struct DeviceGradients {
  DeviceBuffer<float> dy, dx, ddt, dA, dBm, dCm, dD, dh0;
  DeviceBuffer<float> dstates, dB_head, dC_head, ddt_direct, dlambda, dA_part, dD_part;
  DeviceGradients(const SsdShape& s, const std::vector<float>& dy_host, bool has_D, bool has_h0, int chunk) {
    upload(dy, dy_host);
    dx.resize(s.x_size());
    ddt.resize(s.dt_size());
    dA.resize(s.heads);
    dBm.resize(s.bc_size());
    dCm.resize(s.bc_size());
    if (has_D) dD.resize(s.heads);
    if (has_h0) dh0.resize(s.state_size());
    const size_t chunks = static_cast<size_t>(ceil_div(s.seq, chunk));
    dstates.resize(static_cast<size_t>(s.batch) * s.heads * chunks * s.d_state * s.head_dim);
    const size_t head_rows = static_cast<size_t>(s.batch) * s.seq * s.heads * s.d_state;
    dB_head.resize(head_rows);
    dC_head.resize(head_rows);
    ddt_direct.resize(s.dt_size());
    dlambda.resize(s.dt_size());
    dA_part.resize(static_cast<size_t>(s.batch) * s.heads);
    dD_part.resize(static_cast<size_t>(s.batch) * s.heads);
  }
  void poison() {
    for (auto* b : {&dx, &ddt, &dA, &dBm, &dCm, &dD, &dh0})
      if (b->count > 0) CUDA_CHECK(cudaMemset(b->ptr, 0xff, b->count * sizeof(float)));
  }
};

std::string launch_v1_backward(const SsdForwardArgs<float>& a, DeviceGradients& g) {
  const SsdDims& s = a.s;
  const size_t state_bytes = ssd_v1_state_smem(s.chunk, s.d_state, s.head_dim);
  const size_t bwd_bytes = ssd_v1_backward_smem(s.chunk, s.d_state, s.head_dim);
  if (std::max(state_bytes, bwd_bytes) > g_smem_limit)
    return "v1 backward needs " + std::to_string(std::max(state_bytes, bwd_bytes)) +
           " bytes of shared memory at chunk " + std::to_string(s.chunk) + "; the device has " +
           std::to_string(g_smem_limit);
  allow_smem(ssd_v1_chunk_state<float, false>, state_bytes);
  allow_smem(ssd_v1_chunk_state<float, true>, state_bytes);
  allow_smem(ssd_v1_chunk_backward, bwd_bytes);
  const dim3 chunks(s.nchunks, s.heads, s.batch);
  const dim3 elements(ceil_div(s.d_state * s.head_dim, kThreads), s.heads, s.batch);
  // Forward states again (entering states and chunk totals); y is not needed.
  g_stages.mark("chunk_state");
  DEV_LAUNCH(chunks, kThreads, state_bytes, ssd_v1_chunk_state<float, false>)
  (a.Bm, a.x, a.dt, a.A, a.states, a.totals, s);
  check_launch();
  launch_state_pass(a);
  g_stages.mark("chunk_dstate");
  DEV_LAUNCH(chunks, kThreads, state_bytes, ssd_v1_chunk_state<float, true>)
  (a.Cm, g.dy.get(), a.dt, a.A, g.dstates.get(), nullptr, s);
  check_launch();
  g_stages.mark("state_pass_reverse");
  DEV_LAUNCH(elements, kThreads, 0, ssd_v1_state_pass_reverse)(g.dstates.get(), a.totals, g.dh0.get(), s);
  check_launch();
  g_stages.mark("chunk_backward");
  const SsdBackwardArgs b{a.x,
                          a.dt,
                          a.A,
                          a.Bm,
                          a.Cm,
                          a.D,
                          g.dy.get(),
                          a.states,
                          g.dstates.get(),
                          g.dx.get(),
                          g.dB_head.get(),
                          g.dC_head.get(),
                          g.ddt_direct.get(),
                          g.dlambda.get(),
                          s};
  DEV_LAUNCH(chunks, kThreads, bwd_bytes, ssd_v1_chunk_backward)(b);
  check_launch();
  g_stages.mark("decay_backward");
  DEV_LAUNCH(dim3(s.heads, s.batch), kThreads, 0, ssd_v1_decay_backward)
  (a.dt, a.A, g.ddt_direct.get(), g.dlambda.get(), a.x, g.dy.get(), g.ddt.get(), g.dA_part.get(), g.dD_part.get(), s);
  check_launch();
  g_stages.mark("reductions");
  const size_t bc = static_cast<size_t>(s.batch) * s.seq * s.groups * s.d_state;
  const int blocks = static_cast<int>(std::min<size_t>((bc + kThreads - 1) / kThreads, 4096));
  DEV_LAUNCH(blocks, kThreads, 0, ssd_group_sum)(g.dB_head.get(), g.dBm.get(), s);
  DEV_LAUNCH(blocks, kThreads, 0, ssd_group_sum)(g.dC_head.get(), g.dCm.get(), s);
  DEV_LAUNCH(ceil_div(s.heads, 128), 128, 0, ssd_batch_sum)(g.dA_part.get(), g.dA.get(), s.batch, s.heads);
  if (a.D != nullptr)
    DEV_LAUNCH(ceil_div(s.heads, 128), 128, 0, ssd_batch_sum)(g.dD_part.get(), g.dD.get(), s.batch, s.heads);
  check_launch();
  g_stages.mark("end");
  return "";
}

// ---- checks ------------------------------------------------------------------

struct Error {
  double max_abs = 0, scale = 0;  // max |got - ref|, max |ref|
  double rel() const { return scale > 0 ? max_abs / scale : max_abs; }
};

Error compare(const std::vector<float>& got, const std::vector<double>& ref) {
  Error e;
  if (got.size() != ref.size()) return Error{INFINITY, 0};
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - ref[i]);
    e.max_abs = std::isnan(d) ? INFINITY : std::max(e.max_abs, d);
    e.scale = std::max(e.scale, std::fabs(ref[i]));
  }
  return e;
}

int g_failures = 0, g_passes = 0;

void report(const std::string& what, const std::vector<std::pair<std::string, Error>>& errors, double tol) {
  bool ok = true;
  std::string line;
  char buf[160];
  for (auto& [name, e] : errors) {
    std::snprintf(buf, sizeof buf, " %s rel %.2e (abs %.2e)", name.c_str(), e.rel(), e.max_abs);
    line += buf;
    ok = ok && e.rel() <= tol;
  }
  std::printf("%s |%s | tol %.0e %s\n", what.c_str(), line.c_str(), tol, ok ? "PASS" : "FAIL");
  (ok ? g_passes : g_failures)++;
}

std::string shape_text(const SsdShape& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "B=%d T=%d H=%d P=%d N=%d G=%d", s.batch, s.seq, s.heads, s.head_dim, s.d_state,
                s.groups);
  return buf;
}

struct Case {
  std::string name;
  SsdShape shape;
  bool has_D, has_h0;
};

// Tolerance on max |error| / max |reference|: fp32 arithmetic 1e-4; tf32
// operands (10-bit mantissa) 5e-3; bf16 inputs (compared with the reference
// on the same bf16-rounded inputs: what is left is the bf16 output and bf16
// operands inside v2 and v3) 2e-2.
template <typename T>
double tolerance(Version v) {
  if (std::is_same_v<T, __nv_bfloat16>) return 2e-2;
  return v == Version::kChunkTensorCore || v == Version::kLongChunkTensorCore ? 5e-3 : 1e-4;
}

template <typename T>
void check_forward_case(const Case& c, int chunk, uint64_t seed) {
  const char* dtype = std::is_same_v<T, float> ? "f32" : "bf16";
  SsdInputs in = make_inputs<float>(c.shape, seed, c.has_D, c.has_h0);
  if (!std::is_same_v<T, float>) round_inputs_bf16(in);
  const SsdForward ref = ssd_reference_forward(c.shape, in);
  DeviceProblem<T> d(c.shape, in, std::min(chunk, kTcChunk));
  for (const Variant& v : all_variants(chunk)) {
    d.poison_outputs();
    char head[256];
    std::snprintf(head, sizeof head, "[fwd] %-10s %s D=%d h0=%d | %-4s %-15s chunk %-3d", c.name.c_str(),
                  shape_text(c.shape).c_str(), c.has_D, c.has_h0, dtype, version_name(v.version),
                  run_chunk(v, c.shape.seq));
    const std::string why = run_forward(v, d);
    if (!why.empty()) {
      std::printf("%s | SKIP: %s\n", head, why.c_str());
      continue;
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    report(head, {{"y", compare(download(d.y), ref.y)}, {"state", compare(download(d.final_state), ref.final_state)}},
           tolerance<T>(v.version));
  }
}

void check_backward_case(const Case& c, int chunk, uint64_t seed) {
  SsdInputs in = make_inputs<float>(c.shape, seed, c.has_D, c.has_h0);
  Rng rng(seed ^ 0xd1ce);
  std::vector<float> dy(c.shape.x_size());
  for (auto& e : dy) e = static_cast<float>(rng.uniform(-1, 1));
  const SsdGradients ref = ssd_reference_backward(c.shape, in, dy);
  const int L = std::max(1, std::min(chunk, c.shape.seq));
  DeviceProblem<float> d(c.shape, in, L);
  DeviceGradients g(c.shape, dy, c.has_D, c.has_h0, L);
  g.poison();
  char head[256];
  std::snprintf(head, sizeof head, "[bwd] %-10s %s D=%d h0=%d | f32  v1-chunk-simt  chunk %-3d", c.name.c_str(),
                shape_text(c.shape).c_str(), c.has_D, c.has_h0, L);
  const std::string why = launch_v1_backward(d.args(L), g);
  if (!why.empty()) {
    std::printf("%s | SKIP: %s\n", head, why.c_str());
    return;
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<std::pair<std::string, Error>> errors = {
      {"dx", compare(download(g.dx), ref.dx)},   {"ddt", compare(download(g.ddt), ref.ddt)},
      {"dA", compare(download(g.dA), ref.dA)},   {"dB", compare(download(g.dBm), ref.dBm)},
      {"dC", compare(download(g.dCm), ref.dCm)},
  };
  if (c.has_D) errors.push_back({"dD", compare(download(g.dD), ref.dD)});
  if (c.has_h0) errors.push_back({"dh0", compare(download(g.dh0), ref.dh0)});
  // fp32 sums over up to B T terms (dA, dD) and a reverse cumulative sum over T (ddt).
  report(head, errors, 1e-3);
}

// Production's launch (bla::kernels::detail::ssd_forward_launch, chunk 256,
// no D, zero initial state) on the case's inputs, two ways: as the op's
// forward (log decay dt A, key scale dt, B and C per group) and as its
// gradient passes run (no key scale: B already times dt, B and C per head),
// with T and with float outputs. Against the float64 reference without D
// and h0 (for the gradient passes' form, of their rounded inputs).
template <typename T>
void check_production_case(const Case& c, uint64_t seed) {
  namespace prod = bla::kernels::detail;
  const char* dtype = std::is_same_v<T, float> ? "f32" : "bf16";
  const SsdShape& s = c.shape;
  SsdInputs in = make_inputs<float>(s, seed, false, false);
  if (!std::is_same_v<T, float>) round_inputs_bf16(in);
  const SsdForward ref = ssd_reference_forward(s, in);
  // Per head: u = dt B, C (rounded to T like the op's passes do).
  SsdShape per_head = s;
  per_head.groups = s.heads;
  std::vector<float> u(per_head.bc_size()), c_head(per_head.bc_size());
  for (int b = 0; b < s.batch; ++b)
    for (int t = 0; t < s.seq; ++t)
      for (int h = 0; h < s.heads; ++h)
        for (int n = 0; n < s.d_state; ++n) {
          const size_t o = per_head.bc_at(b, t, h) + n, i = s.bc_at(b, t, h) + n;
          const float v = in.dt[s.dt_at(b, t, h)] * in.Bm[i];
          u[o] = std::is_same_v<T, float> ? v : round_bf16(v);
          c_head[o] = in.Cm[i];
        }
  // The per-head passes' own reference: u, rounded as they receive it, is
  // their key (Bm = u / dt, so that the reference's dt Bm is u in float64).
  // Held to the grouped reference instead, a single row's dot product C . u
  // can cancel to a few percent of its terms, and u's rounding then shows as
  // a kernel error (T = 1, one head).
  const auto widen = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
  SsdInputsOf<double> head_in{widen(in.x), widen(in.dt), widen(in.A), widen(u), widen(c_head), {}, {}};
  for (int b = 0; b < s.batch; ++b)
    for (int t = 0; t < s.seq; ++t)
      for (int h = 0; h < s.heads; ++h)
        for (int n = 0; n < s.d_state; ++n) head_in.Bm[per_head.bc_at(b, t, h) + n] /= head_in.dt[s.dt_at(b, t, h)];
  const SsdForward ref_head = ssd_reference_forward(per_head, head_in);
  DeviceBuffer<T> x, Bm, Cm, Bh, Ch, y;
  DeviceBuffer<float> dt, log_decay, y_float, states, totals, final_state;
  upload(x, in.x);
  upload(Bm, in.Bm);
  upload(Cm, in.Cm);
  upload(Bh, u);
  upload(Ch, c_head);
  upload(dt, in.dt);
  upload(log_decay, log_decays(s, in));
  y.resize(s.x_size());
  y_float.resize(s.x_size());
  final_state.resize(s.state_size());
  const size_t chunks = static_cast<size_t>(prod::ssd_chunks(s.seq));
  states.resize(static_cast<size_t>(s.batch) * s.heads * chunks * s.d_state * s.head_dim);
  totals.resize(static_cast<size_t>(s.batch) * s.heads * chunks);
  for (const bool grouped : {true, false})
    for (const bool float_output : {false, true}) {
      prod::SsdForwardArgs a;
      a.shape = {s.batch, s.seq, s.heads, s.head_dim, grouped ? s.groups : s.heads, s.d_state};
      a.dtype = std::is_same_v<T, float> ? prod::SsdDtype::kFloat32 : prod::SsdDtype::kBFloat16;
      a.float_output = float_output;
      a.x = x.get();
      a.log_decay = log_decay.get();
      a.key_scale = grouped ? dt.get() : nullptr;
      a.Bm = grouped ? Bm.get() : Bh.get();
      a.Cm = grouped ? Cm.get() : Ch.get();
      a.y = float_output ? static_cast<void*>(y_float.get()) : static_cast<void*>(y.get());
      a.states = states.get();
      a.totals = totals.get();
      a.final_state = final_state.get();
      CUDA_CHECK(cudaMemset(y.ptr, 0xff, y.count * sizeof(T)));
      CUDA_CHECK(cudaMemset(y_float.ptr, 0xff, y_float.count * sizeof(float)));
      CUDA_CHECK(cudaMemset(final_state.ptr, 0xff, final_state.count * sizeof(float)));
      char head[256];
      std::snprintf(head, sizeof head, "[prod] %-10s %s | %-4s %s key scale, %s out", c.name.c_str(),
                    shape_text(s).c_str(), dtype, grouped ? "grouped, dt as" : "per head, no",
                    float_output ? "float" : dtype);
      const cudaError_t err = prod::ssd_forward_launch(a, nullptr);
      if (err != cudaSuccess) {
        std::printf("%s | SKIP: %s\n", head, cudaGetErrorString(err));
        continue;
      }
      CUDA_CHECK(cudaDeviceSynchronize());
      const std::vector<float> got = float_output ? download(y_float) : download(y);
      const SsdForward& r = grouped ? ref : ref_head;
      report(head, {{"y", compare(got, r.y)}, {"state", compare(download(final_state), r.final_state)}},
             tolerance<T>(Version::kLongChunkTensorCore));
    }
}

// The analytic CPU backward against central differences of the CPU forward,
// all in float64, on a tiny problem: what the GPU backward is then held to.
void check_reference_backward() {
  SsdShape s;
  s.batch = 2, s.seq = 6, s.heads = 4, s.head_dim = 2, s.groups = 2, s.d_state = 3;
  auto in = make_inputs<double>(s, 99, true, true);
  Rng rng(7);
  std::vector<double> dy(s.x_size());
  for (auto& e : dy) e = rng.uniform(-1, 1);
  const SsdGradients g = ssd_reference_backward(s, in, dy);
  auto loss = [&](const SsdInputsOf<double>& v) {
    const SsdForward f = ssd_reference_forward(s, v);
    double l = 0;
    for (size_t i = 0; i < dy.size(); ++i) l += f.y[i] * dy[i];
    return l;
  };
  struct Param {
    const char* name;
    std::vector<double> SsdInputsOf<double>::*field;
    const std::vector<double>* grad;
  };
  const Param params[] = {{"dx", &SsdInputsOf<double>::x, &g.dx},   {"ddt", &SsdInputsOf<double>::dt, &g.ddt},
                          {"dA", &SsdInputsOf<double>::A, &g.dA},   {"dB", &SsdInputsOf<double>::Bm, &g.dBm},
                          {"dC", &SsdInputsOf<double>::Cm, &g.dCm}, {"dD", &SsdInputsOf<double>::D, &g.dD},
                          {"dh0", &SsdInputsOf<double>::h0, &g.dh0}};
  std::vector<std::pair<std::string, Error>> errors;
  const double eps = 1e-6;
  for (const Param& p : params) {
    std::vector<float> fd(p.grad->size());
    for (size_t i = 0; i < fd.size(); ++i) {
      auto v = in;
      (v.*p.field)[i] += eps;
      const double up = loss(v);
      (v.*p.field)[i] -= 2 * eps;
      fd[i] = static_cast<float>((up - loss(v)) / (2 * eps));
    }
    // compare() takes float "got": the finite differences, rounded to float.
    errors.push_back({p.name, compare(fd, *p.grad)});
  }
  report("[ref] analytic CPU backward vs central differences (float64, B=2 T=6 H=4 G=2 N=3 P=2)", errors, 1e-6);
}

// ---- timing ------------------------------------------------------------------

double g_peak_gbs = 0;  // theoretical DRAM bandwidth, for reference

template <typename Launch>
double time_ms(Launch launch, int reps) {
  for (int i = 0; i < 2; ++i) launch();  // warm-up
  CUDA_CHECK(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  CUDA_CHECK(cudaEventRecord(start));
  for (int i = 0; i < reps; ++i) launch();
  CUDA_CHECK(cudaEventRecord(stop));
  CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return ms / reps;
}

// Per-kernel times of one version (a few more calls, each kernel between events).
template <typename Launch>
void print_stages(Launch launch, int reps) {
  g_stages.on = true;
  for (int i = 0; i < reps; ++i) launch();
  g_stages.on = false;
  std::string line;
  char buf[96];
  for (auto& [name, ms] : g_stages.totals()) {
    std::snprintf(buf, sizeof buf, " %s %.3f", name.c_str(), ms / reps);
    line += buf;
  }
  std::printf("        per kernel (ms):%s\n", line.c_str());
}

void print_timing(const char* what, double ms, double bytes) {
  const double gbs = bytes / (ms * 1e-3) / 1e9;
  std::printf("%s | %8.3f ms | %7.1f GB/s of %.1f MB in+out", what, ms, gbs, bytes / 1e6);
  if (g_peak_gbs > 0) std::printf(" (%.0f%% of %.0f GB/s peak)", 100 * gbs / g_peak_gbs, g_peak_gbs);
  std::printf("\n");
}

template <typename T>
void bench_forward(const SsdShape& s, int chunk, int reps, uint64_t seed) {
  const char* dtype = std::is_same_v<T, float> ? "f32" : "bf16";
  SsdInputs in = make_inputs<float>(s, seed, true, false);
  DeviceProblem<T> d(s, in, std::min(chunk, kTcChunk));
  // Bytes a fused kernel must move at least: x, B, C, y in T; dt, A, D and the final state in float.
  const double bytes = static_cast<double>(sizeof(T)) * (2 * s.x_size() + 2 * s.bc_size()) +
                       4.0 * (s.dt_size() + 2 * s.heads + s.state_size());
  {  // What this machine's DRAM does in practice: x copied to y, the same bytes in and out as y's share of the floor.
    char head[256];
    std::snprintf(head, sizeof head, "[time] fwd %s %-4s %-15s          ", shape_text(s).c_str(), dtype, "memcpy x->y");
    const size_t x_bytes = sizeof(T) * s.x_size();
    const double ms =
        time_ms([&] { CUDA_CHECK(cudaMemcpy(d.y.ptr, d.x.ptr, x_bytes, cudaMemcpyDeviceToDevice)); }, reps);
    print_timing(head, ms, 2.0 * x_bytes);
  }
  // No CPU reference at this size: every variant against v1's output instead.
  std::vector<double> baseline;
  if (run_forward(Variant{Version::kChunkSimt, chunk}, d).empty()) {
    const std::vector<float> y = download(d.y);
    baseline.assign(y.begin(), y.end());
  }
  for (const Variant& v : all_variants(chunk)) {
    char head[256];
    std::snprintf(head, sizeof head, "[time] fwd %s %-4s %-15s chunk %-3d", shape_text(s).c_str(), dtype,
                  version_name(v.version), run_chunk(v, s.seq));
    d.poison_outputs();
    const std::string why = run_forward(v, d);
    if (!why.empty()) {
      std::printf("%s | SKIP: %s\n", head, why.c_str());
      continue;
    }
    const Error e = baseline.empty() ? Error{} : compare(download(d.y), baseline);
    const int n = v.version == Version::kRecurrent ? std::min(reps, 3) : reps;  // v0 is slow at this shape
    const double ms = time_ms([&] { run_forward(v, d); }, n);
    print_timing(head, ms, bytes);
    print_stages([&] { run_forward(v, d); }, n);
    if (!baseline.empty()) std::printf("        y vs v1: rel %.2e (abs %.2e)\n", e.rel(), e.max_abs);
  }
}

void bench_backward(const SsdShape& s, int chunk, int reps, uint64_t seed) {
  SsdInputs in = make_inputs<float>(s, seed, true, false);
  Rng rng(seed ^ 0xd1ce);
  std::vector<float> dy(s.x_size());
  for (auto& e : dy) e = static_cast<float>(rng.uniform(-1, 1));
  const int L = std::max(1, std::min(chunk, s.seq));
  DeviceProblem<float> d(s, in, L);
  DeviceGradients g(s, dy, true, false, L);
  char head[256];
  std::snprintf(head, sizeof head, "[time] bwd %s f32  v1-chunk-simt  chunk %-3d", shape_text(s).c_str(), L);
  const std::string why = launch_v1_backward(d.args(L), g);
  if (!why.empty()) {
    std::printf("%s | SKIP: %s\n", head, why.c_str());
    return;
  }
  // Reads x, dt, B, C, dy; writes dx, ddt, dB, dC (A, D and their gradients are negligible).
  const double bytes = 4.0 * (3 * s.x_size() + 2 * s.dt_size() + 4 * s.bc_size());
  const double ms = time_ms([&] { launch_v1_backward(d.args(L), g); }, reps);
  print_timing(head, ms, bytes);
  print_stages([&] { launch_v1_backward(d.args(L), g); }, reps);
}

// ---- options -----------------------------------------------------------------

struct Options {
  SsdShape shape;  // B=2 T=1024 H=8 P=64 N=64 G=1
  int chunk = 64;
  uint64_t seed = 1234;
  int reps = 20;
  int bench_batch = 4, bench_seq = 8192, bench_heads = 16;
  bool check = true, bench = true, backward = true;
  std::string only;  // run only the check cases whose name contains this
};

[[noreturn]] void usage(const char* arg) {
  std::fprintf(stderr,
               "ssd_chunk_dev: unknown or incomplete option '%s'\n"
               "options: --B --T --H --P --N --G --chunk --seed --reps --bench-B --bench-T --bench-H (each with a "
               "value), --no-check, --no-bench, --no-backward, --only CASE (check cases whose name contains CASE)\n",
               arg);
  std::exit(64);
}

Options parse(int argc, char** argv) {
  Options o;
  std::map<std::string, int*> ints = {
      {"--B", &o.shape.batch},     {"--T", &o.shape.seq},        {"--H", &o.shape.heads},
      {"--P", &o.shape.head_dim},  {"--N", &o.shape.d_state},    {"--G", &o.shape.groups},
      {"--chunk", &o.chunk},       {"--reps", &o.reps},          {"--bench-B", &o.bench_batch},
      {"--bench-T", &o.bench_seq}, {"--bench-H", &o.bench_heads}};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-check")
      o.check = false;
    else if (a == "--no-bench")
      o.bench = false;
    else if (a == "--no-backward")
      o.backward = false;
    else if (a == "--only" && i + 1 < argc)
      o.only = argv[++i];
    else if (a == "--seed" && i + 1 < argc)
      o.seed = std::strtoull(argv[++i], nullptr, 10);
    else if (ints.count(a) && i + 1 < argc)
      *ints[a] = std::atoi(argv[++i]);
    else
      usage(argv[i]);
  }
  const SsdShape& s = o.shape;
  if (s.batch < 1 || s.seq < 1 || s.heads < 1 || s.head_dim < 1 || s.d_state < 1 || s.groups < 1 ||
      s.heads % s.groups != 0 || o.chunk < 1 || o.reps < 1) {
    std::fprintf(stderr, "ssd_chunk_dev: need positive sizes, chunk and reps, and H divisible by G (got %s chunk %d)\n",
                 shape_text(s).c_str(), o.chunk);
    std::exit(64);
  }
  return o;
}

int run(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // whole lines reach a log even if the run is cut short
  const Options o = parse(argc, argv);
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int smem_optin = 0, mem_clock_khz = 0, bus_bits = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, device);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
  cudaGetLastError();  // the two above are informative only
  g_smem_limit = static_cast<size_t>(smem_optin);
  g_peak_gbs = 2.0 * mem_clock_khz * 1e3 * (bus_bits / 8) / 1e9;
  std::printf("device: %s (sm_%d%d), %d SMs, %zu bytes shared memory per block (opt-in), peak DRAM ~%.0f GB/s\n",
              prop.name, prop.major, prop.minor, prop.multiProcessorCount, g_smem_limit, g_peak_gbs);

  if (o.check) {
    check_reference_backward();
    const SsdShape base = o.shape;
    auto with = [&](int B, int T, int H, int P, int N, int G) {
      SsdShape s = base;
      s.batch = B, s.seq = T, s.heads = H, s.head_dim = P, s.d_state = N, s.groups = G;
      return s;
    };
    const int T = base.seq, L = o.chunk;
    const int odd = std::max(1, T - L / 2 - 3);  // not a multiple of the chunk
    const std::vector<Case> cases = {
        {"default", base, true, false},
        {"T%chunk", with(base.batch, odd, base.heads, base.head_dim, base.d_state, base.groups), true, true},
        {"T<chunk", with(base.batch, std::max(1, L / 2 + 5), base.heads, base.head_dim, base.d_state, base.groups),
         false, false},
        {"T=1", with(base.batch, 1, base.heads, base.head_dim, base.d_state, base.groups), true, true},
        {"groups", with(1, 300, 4, 128, 128, 2), true, true},
        {"N128P64", with(1, 200, 2, 64, 128, 1), false, true},
        {"N64P128", with(1, 130, 2, 128, 64, 2), true, false},
    };
    for (size_t i = 0; i < cases.size(); ++i) {
      if (cases[i].name.find(o.only) == std::string::npos) continue;
      check_forward_case<float>(cases[i], L, o.seed + i);
      check_forward_case<__nv_bfloat16>(cases[i], L, o.seed + i);
      check_production_case<float>(cases[i], o.seed + i);
      check_production_case<__nv_bfloat16>(cases[i], o.seed + i);
    }
    if (o.backward) {
      const std::vector<Case> bwd = {
          {"small", with(2, 200, 4, 64, 64, 2), true, true},
          {"T%chunk", with(1, std::max(1, 3 * L + 17), 2, 64, 64, 1), false, false},
          {"T<chunk", with(2, std::max(1, L / 2 + 5), 2, 64, 64, 1), true, true},
          {"T=1", with(1, 1, 2, 64, 64, 1), true, true},
          {"N128P128", with(1, 150, 2, 128, 128, 1), true, true},
      };
      for (size_t i = 0; i < bwd.size(); ++i)
        if (bwd[i].name.find(o.only) != std::string::npos) check_backward_case(bwd[i], L, o.seed + 100 + i);
    }
    std::printf("checks: %d passed, %d failed\n", g_passes, g_failures);
  }

  if (o.bench) {
    for (int dim : {64, 128}) {
      SsdShape s;
      s.batch = o.bench_batch, s.seq = o.bench_seq, s.heads = o.bench_heads, s.head_dim = dim, s.d_state = dim,
      s.groups = 1;
      bench_forward<float>(s, o.chunk, o.reps, o.seed);
      bench_forward<__nv_bfloat16>(s, o.chunk, o.reps, o.seed);
      if (o.backward) bench_backward(s, o.chunk, o.reps, o.seed);
    }
  }
  return g_failures > 0 ? 1 : 0;
}

}  // namespace
}  // namespace ssd_dev

int main(int argc, char** argv) { return ssd_dev::run(argc, argv); }
