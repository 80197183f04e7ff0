// The BLA kernels of training (kernels/bla_carry.cu, bla_chunk_forward.cu,
// bla_chunk_backward.cu) alone, at one shape: each launch timed with CUDA
// events, and the outputs of one build written to a file or compared with
// another build's. A variant behind a compile flag (README, "Variants behind
// a compile flag") is then timed and checked against the default build in
// seconds on the GPU machine, with both programs built here by nvcc
// (scripts/build_dev_harnesses.sh) and nothing built there.
//
// The order of launches is bla_autograd.cpp's: the carry's forward (keys and
// values into their modal slots before every chunk), the chunk step's
// forward (saving the slot probabilities), its backward (the scores pass,
// then the inputs pass) and the carry's backward. The tables are synthetic:
// real modes paired two by two, an identity basis, decays in (0, 1); the
// kernels' work and memory traffic are those of any tables of their shape,
// the numbers are not BLA's. The kernels' correctness against float64 lives
// in tests/emulation (CPU) and tests/cuda (GPU); here a variant is held to
// the default build's outputs, and every output element must be written
// (outputs start as NaN).
//
// Plain CUDA and C++, no LibTorch; runs on the CPU under cpu_emulation.h at
// small shapes (CTest KernelEmulation.BlaChunkDev*).
//   bla_chunk_dev [--batch 4 --seq 8192 --heads 16 --dim 64 --slots 64 --window 512 --dtype bf16]
//                 [--warmup 3 --reps 20 --sets 2] [--write FILE | --compare FILE [--max-difference X]]
//                 [--no-time]
// Exit status: 0; 1 where an output element was not written, or --compare
// found another shape or a difference above --max-difference; 2 on bad
// options or a CUDA error.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "bla_chunk_launch.h"

namespace {

using bla::kernels::detail::BlaCarryArgs;
using bla::kernels::detail::BlaChunkArgs;
using bla::kernels::detail::BlaChunkShape;
using bla::kernels::detail::BlaChunkTablesView;
using bla::kernels::detail::BlaDtype;
using bla::kernels::detail::kBlaChunk;

void ok(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  std::fprintf(stderr, "bla_chunk_dev: %s: %s\n", what, cudaGetErrorString(err));
  std::exit(2);
}

struct Options {
  int batch = 4, seq = 8192, heads = 16, dim = 64, slots = 64, window = 512;
  bool bf16 = true;
  int warmup = 3, reps = 20, sets = 2;
  std::string write, compare;
  double max_difference = -1;  // >= 0: --compare fails where an output differs by more (relative; 0: any bit)
  bool time = true;
};

Options parse(int argc, char** argv) {
  Options o;
  auto fail = [](const std::string& why) {
    std::fprintf(stderr,
                 "bla_chunk_dev: %s\nusage: bla_chunk_dev [--batch N --seq N --heads N --dim 64|128 --slots 1..128 "
                 "--window N --dtype bf16|f32] [--warmup N --reps N --sets N] [--write FILE | --compare FILE "
                 "[--max-difference X]] [--no-time]\n",
                 why.c_str());
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-time") {
      o.time = false;
      continue;
    }
    if (i + 1 >= argc) fail(a + " needs a value");
    const std::string v = argv[++i];
    int* n = a == "--batch" ? &o.batch : a == "--seq" ? &o.seq : a == "--heads" ? &o.heads : a == "--dim" ? &o.dim
             : a == "--slots" ? &o.slots : a == "--window" ? &o.window : a == "--warmup" ? &o.warmup
             : a == "--reps" ? &o.reps : a == "--sets" ? &o.sets : nullptr;
    if (n != nullptr) {
      *n = std::atoi(v.c_str());
      if (*n < (n == &o.warmup ? 0 : 1)) fail(a + " " + v + " is not a positive count");
    } else if (a == "--dtype") {
      if (v != "bf16" && v != "f32") fail("--dtype " + v + ": use bf16 or f32");
      o.bf16 = v == "bf16";
    } else if (a == "--write") {
      o.write = v;
    } else if (a == "--compare") {
      o.compare = v;
    } else if (a == "--max-difference") {
      o.max_difference = std::atof(v.c_str());
      if (!(o.max_difference >= 0)) fail("--max-difference " + v + " must be 0 or more");
    } else {
      fail("unknown option " + a);
    }
  }
  if (o.slots > 128) fail("--slots " + std::to_string(o.slots) + ": the kernels hold 1 to 128");
  const int padded = o.slots <= 32 ? 32 : o.slots <= 64 ? 64 : 128;
  if (!bla::kernels::detail::bla_chunk_shape_supported(o.dim, padded))
    fail("--dim " + std::to_string(o.dim) + " with " + std::to_string(o.slots) + " slots is not compiled in");
  return o;
}

// Device memory of n elements of `bytes_each`, NaN everywhere (0xff bytes:
// NaN in float32 and bf16 alike) until something writes it.
struct Buffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  Buffer(size_t n, size_t bytes_each) : bytes(n * bytes_each) {
    ok(cudaMalloc(&ptr, bytes), "cudaMalloc");
    ok(cudaMemset(ptr, 0xff, bytes), "cudaMemset");
  }
  ~Buffer() { cudaFree(ptr); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  float* f() const { return static_cast<float*>(ptr); }
  void upload(const void* host) const { ok(cudaMemcpy(ptr, host, bytes, cudaMemcpyHostToDevice), "upload"); }
  std::vector<unsigned char> download() const {
    std::vector<unsigned char> host(bytes);
    ok(cudaMemcpy(host.data(), ptr, bytes, cudaMemcpyDeviceToHost), "download");
    return host;
  }
};

uint64_t mix(uint64_t z) {  // splitmix64's output function
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// n numbers of stream `seed`, uniform with mean 0 and variance 1, stored as
// bf16 or float32 (cheap to draw: the timed shape has 134M of them a set).
std::vector<unsigned char> random_values(size_t n, uint64_t seed, bool bf16) {
  std::vector<unsigned char> out(n * (bf16 ? 2 : 4));
  for (size_t i = 0; i < n; ++i) {
    const double u = static_cast<double>(mix(seed * 0x9e3779b97f4a7c15ull + i) >> 11) * 0x1p-53;  // [0, 1)
    const float x = static_cast<float>((2.0 * u - 1.0) * 1.7320508075688772);
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    if (bf16) {
      const uint16_t top = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);  // nearest even
      std::memcpy(&out[2 * i], &top, 2);
    } else {
      std::memcpy(&out[4 * i], &bits, 4);
    }
  }
  return out;
}

// x rounded to tf32 as cvt.rna.tf32.f32 rounds it: to nearest at 10
// mantissa bits, ties away from zero, the low 13 bits 0.
float tf32_rna(float x) {
  if (!std::isfinite(x)) return x;
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits = (bits + 0x1000u) & 0xffffe000u;
  std::memcpy(&x, &bits, 4);
  return x;
}

// Synthetic tables of N slots padded to NP (bla_chunk_launch.h's shapes;
// zero beyond N as make_bla_chunk_tables pads): slot s decays by r_s a
// token, modes s and s ^ 1 are partners, the basis is the identity, so
// inject[s][c] = h[63 - c][s]. The product tables of a bf16 run are
// rounded to tf32 here, as the library's make_bla_chunk_tables rounds its
// copies for bf16 inputs (block_product.cuh, kTable: the kernels load them
// without rounding).
struct Tables {
  Buffer inject, h, h_t, basis, basis_t, alpha, beta, beta_t, partner;
  explicit Tables(int slots, int padded, bool bf16)
      : inject(size_t(padded) * kBlaChunk, 4), h(size_t(kBlaChunk) * padded, 4), h_t(size_t(padded) * kBlaChunk, 4),
        basis(size_t(padded) * padded, 4), basis_t(size_t(padded) * padded, 4), alpha(size_t(kBlaChunk) * padded, 4),
        beta(size_t(kBlaChunk) * padded, 4), beta_t(size_t(kBlaChunk) * padded, 4), partner(padded, 4) {
    const int C = kBlaChunk, NP = padded;
    std::vector<float> vi(NP * C, 0.f), vh(C * NP, 0.f), vht(NP * C, 0.f), vb(NP * NP, 0.f), va(C * NP, 0.f),
        vbe(C * NP, 0.f), vbt(C * NP, 0.f);
    std::vector<int> vp(NP);
    for (int s = 0; s < NP; ++s) {
      vp[s] = s < slots && (s ^ 1) < slots ? s ^ 1 : s;
      if (s >= slots) continue;
      vb[s * NP + s] = 1.f;
      const double r = 0.01 + 0.2 * s / slots;
      for (int i = 0; i < C; ++i) {
        const float decay = static_cast<float>(std::exp(-r * (i + 1)));
        vh[i * NP + s] = decay / slots;
        va[i * NP + s] = decay;
        vbe[i * NP + s] = 0.1f * decay;
        vbt[i * NP + s] = 0.1f * decay;
      }
    }
    for (int s = 0; s < NP; ++s)
      for (int c = 0; c < C; ++c) {
        vht[s * C + c] = vh[c * NP + s];
        vi[s * C + c] = vh[(C - 1 - c) * NP + s];
      }
    if (bf16)
      for (auto* table : {&vi, &vh, &vht, &vb})
        for (float& x : *table) x = tf32_rna(x);
    inject.upload(vi.data());
    h.upload(vh.data());
    h_t.upload(vht.data());
    basis.upload(vb.data());
    basis_t.upload(vb.data());  // the identity is its own transpose
    alpha.upload(va.data());
    beta.upload(vbe.data());
    beta_t.upload(vbt.data());
    partner.upload(vp.data());
  }
  BlaChunkTablesView view() const {
    BlaChunkTablesView v;
    v.inject = inject.f();
    v.h = h.f();
    v.h_t = h_t.f();
    v.basis = basis.f();
    v.basis_t = basis_t.f();
    v.alpha = alpha.f();
    v.beta = beta.f();
    v.beta_t = beta_t.f();
    v.partner = static_cast<const int*>(partner.ptr);
    return v;
  }
};

// One input set and everything the four launches write for it.
struct Run {
  size_t tokens, modal, scores;  // elements of a (B, T, H, D), (B, H, nc, NP, D) and (B, H, nc, 64, NP) tensor
  size_t elem;
  Buffer q, k, v, grad_out, out, grad_q, grad_k_chunk, grad_v_chunk, grad_k, grad_v;
  Buffer modal_keys, modal_values, grad_modal_keys, grad_modal_values, probabilities, grad_scores;
  Run(const BlaChunkShape& s, bool bf16, uint64_t seed)
      : tokens(size_t(s.batch) * s.seq * s.heads * s.dim),
        modal(size_t(s.batch) * s.heads * s.chunks * s.padded * s.dim),
        scores(size_t(s.batch) * s.heads * s.chunks * kBlaChunk * s.padded),
        elem(bf16 ? 2 : 4),
        q(tokens, elem), k(tokens, elem), v(tokens, elem), grad_out(tokens, elem), out(tokens, elem),
        grad_q(tokens, elem), grad_k_chunk(tokens, elem), grad_v_chunk(tokens, elem), grad_k(tokens, elem),
        grad_v(tokens, elem), modal_keys(modal, 4), modal_values(modal, 4), grad_modal_keys(modal, 4),
        grad_modal_values(modal, 4), probabilities(scores, 4), grad_scores(scores, 4) {
    const Buffer* inputs[] = {&q, &k, &v, &grad_out};
    for (int i = 0; i < 4; ++i) inputs[i]->upload(random_values(tokens, 4 * seed + i, bf16).data());
  }
};

struct Launches {
  BlaChunkShape shape;
  BlaDtype dtype;
  BlaChunkTablesView tables;

  BlaCarryArgs carry(const Run& r) const {
    BlaCarryArgs a;
    a.shape = shape;
    a.dtype = dtype;
    a.tables = tables;
    a.tensors[0].x = r.k.ptr;
    a.tensors[0].modal = r.modal_keys.f();
    a.tensors[0].grad_modal = r.grad_modal_keys.f();
    a.tensors[0].grad_add = r.grad_k_chunk.ptr;
    a.tensors[0].grad_x = r.grad_k.ptr;
    a.tensors[1].x = r.v.ptr;
    a.tensors[1].modal = r.modal_values.f();
    a.tensors[1].grad_modal = r.grad_modal_values.f();
    a.tensors[1].grad_add = r.grad_v_chunk.ptr;
    a.tensors[1].grad_x = r.grad_v.ptr;
    return a;
  }
  BlaChunkArgs chunk(const Run& r) const {
    BlaChunkArgs a;
    a.shape = shape;
    a.dtype = dtype;
    a.tables = tables;
    a.q = r.q.ptr;
    a.k = r.k.ptr;
    a.v = r.v.ptr;
    a.modal_keys = r.modal_keys.f();
    a.modal_values = r.modal_values.f();
    a.out = r.out.ptr;
    a.grad_out = r.grad_out.ptr;
    a.grad_q = r.grad_q.ptr;
    a.grad_k = r.grad_k_chunk.ptr;
    a.grad_v = r.grad_v_chunk.ptr;
    a.grad_modal_keys = r.grad_modal_keys.f();
    a.grad_modal_values = r.grad_modal_values.f();
    a.grad_scores = r.grad_scores.f();
    a.probabilities = r.probabilities.f();
    return a;
  }
  cudaError_t carry_forward(const Run& r) const { return bla_carry_forward_launch(carry(r), nullptr); }
  cudaError_t chunk_forward(const Run& r) const { return bla_chunk_forward_launch(chunk(r), nullptr); }
  cudaError_t chunk_backward(const Run& r) const { return bla_chunk_backward_launch(chunk(r), nullptr); }
  cudaError_t carry_backward(const Run& r) const { return bla_carry_backward_launch(carry(r), nullptr); }
  cudaError_t all(const Run& r) const {
    for (auto step : {&Launches::carry_forward, &Launches::chunk_forward, &Launches::chunk_backward,
                      &Launches::carry_backward}) {
      const cudaError_t err = (this->*step)(r);
      if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
  }
};

// Median milliseconds of body(run) over o.reps, cycling over the sets.
double median_ms(const std::function<cudaError_t(const Run&)>& body, const std::vector<const Run*>& runs,
                 const Options& o) {
  for (int i = 0; i < o.warmup; ++i) ok(body(*runs[i % runs.size()]), "warm-up launch");
  ok(cudaDeviceSynchronize(), "warm-up");
  cudaEvent_t start, stop;
  ok(cudaEventCreate(&start), "cudaEventCreate");
  ok(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<float> ms(o.reps);
  for (int r = 0; r < o.reps; ++r) {
    ok(cudaEventRecord(start, nullptr), "cudaEventRecord");
    ok(body(*runs[r % runs.size()]), "launch");
    ok(cudaEventRecord(stop, nullptr), "cudaEventRecord");
    ok(cudaEventSynchronize(stop), "cudaEventSynchronize");
    ok(cudaEventElapsedTime(&ms[r], start, stop), "cudaEventElapsedTime");
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// The outputs the comparison covers, as float64, with their names.
struct Output {
  const char* name;
  std::vector<unsigned char> bytes;
  size_t elem;
  double at(size_t i) const {
    if (elem == 4) {
      float x;
      std::memcpy(&x, &bytes[4 * i], 4);
      return x;
    }
    uint32_t bits = 0;
    std::memcpy(reinterpret_cast<unsigned char*>(&bits) + 2, &bytes[2 * i], 2);  // little-endian: the top half
    float x;
    std::memcpy(&x, &bits, 4);
    return x;
  }
  size_t count() const { return bytes.size() / elem; }
};

std::vector<Output> outputs(const Run& r) {
  return {{"out", r.out.download(), r.elem}, {"grad_q", r.grad_q.download(), r.elem},
          {"grad_k", r.grad_k.download(), r.elem}, {"grad_v", r.grad_v.download(), r.elem}};
}

// Unwritten (non-finite) elements of each output; 0 everywhere is the pass.
size_t report_unwritten(const std::vector<Output>& outs) {
  size_t bad_total = 0;
  for (const Output& x : outs) {
    size_t bad = 0;
    for (size_t i = 0; i < x.count(); ++i) bad += std::isfinite(x.at(i)) ? 0 : 1;
    if (bad > 0) std::printf("%-7s %zu of %zu elements not finite (never written, or overflowed)\n", x.name, bad,
                             x.count());
    bad_total += bad;
  }
  return bad_total;
}

// The shape line both builds print and write: a comparison of two runs of
// different shapes stops here.
std::string shape_text(const Options& o, const BlaChunkShape& s) {
  char text[256];
  std::snprintf(text, sizeof text, "B%d T%d H%d D%d N%d (kernels for %d) W%d %s", o.batch, o.seq, o.heads, o.dim,
                o.slots, s.padded, o.window, o.bf16 ? "bf16" : "f32");
  return text;
}

void write_outputs(const std::string& path, const std::string& shape, const std::vector<Output>& outs) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::fprintf(stderr, "bla_chunk_dev: cannot write %s\n", path.c_str());
    std::exit(2);
  }
  std::fprintf(f, "%s\n", shape.c_str());
  for (const Output& x : outs) std::fwrite(x.bytes.data(), 1, x.bytes.size(), f);
  std::fclose(f);
  std::printf("wrote out, grad_q, grad_k, grad_v of input set 0 to %s\n", path.c_str());
}

// Per output: bit-identical, or how many elements differ and by how much
// (the largest difference over the largest magnitude of the written file's).
// Returns false where the shapes differ or, with max_difference >= 0, an
// output differs by more than that (0: by any bit).
bool compare_outputs(const std::string& path, const std::string& shape, const std::vector<Output>& outs,
                     double max_difference) {
  bool within = true;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "bla_chunk_dev: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  char line[256] = {0};
  if (std::fgets(line, sizeof line, f) == nullptr || shape + "\n" != line) {
    std::printf("%s holds another shape: %s", path.c_str(), line);
    std::fclose(f);
    return false;
  }
  for (const Output& x : outs) {
    Output ref{x.name, std::vector<unsigned char>(x.bytes.size()), x.elem};
    if (std::fread(ref.bytes.data(), 1, ref.bytes.size(), f) != ref.bytes.size()) {
      std::printf("%s ends before %s\n", path.c_str(), x.name);
      std::fclose(f);
      return false;
    }
    size_t differ = 0;
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < x.count(); ++i) {
      const double a = x.at(i), b = ref.at(i);
      max_ref = std::max(max_ref, std::fabs(b));
      if (std::memcmp(&x.bytes[i * x.elem], &ref.bytes[i * x.elem], x.elem) == 0) continue;
      ++differ;
      max_diff = std::max(max_diff, std::isfinite(a) ? std::fabs(a - b) : std::numeric_limits<double>::infinity());
    }
    if (differ == 0) {
      std::printf("%-7s bit-identical to %s\n", x.name, path.c_str());
      continue;
    }
    if (max_difference >= 0 && !(max_diff / max_ref <= max_difference && max_difference > 0)) within = false;
      std::printf("%-7s %zu of %zu elements differ from %s; largest difference %.3e, %.3e of the largest |value| %.3e\n",
                  x.name, differ, x.count(), path.c_str(), max_diff, max_diff / max_ref, max_ref);
  }
  std::fclose(f);
  return within;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  BlaChunkShape s;
  s.batch = o.batch;
  s.seq = o.seq;
  s.heads = o.heads;
  s.dim = o.dim;
  s.slots = o.slots;
  s.padded = o.slots <= 32 ? 32 : o.slots <= 64 ? 64 : 128;
  s.window = o.window;
  s.chunks = (o.seq + kBlaChunk - 1) / kBlaChunk;
  s.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(o.dim)));
  const std::string shape = shape_text(o, s);
  const Tables tables(s.slots, s.padded, o.bf16);
  const Launches launch{s, o.bf16 ? BlaDtype::kBFloat16 : BlaDtype::kFloat32, tables.view()};

  std::vector<Run*> owned;
  std::vector<const Run*> runs;
  for (int i = 0; i < (o.time ? o.sets : 1); ++i) {
    owned.push_back(new Run(s, o.bf16, static_cast<uint64_t>(i + 1)));
    runs.push_back(owned.back());
  }
  ok(launch.all(*runs[0]), "launch");
  ok(cudaDeviceSynchronize(), "the first run");
  const std::vector<Output> outs = outputs(*runs[0]);
  std::printf("%s\n", shape.c_str());
  int status = report_unwritten(outs) == 0 ? 0 : 1;
  if (!o.write.empty()) write_outputs(o.write, shape, outs);
  if (!o.compare.empty() && !compare_outputs(o.compare, shape, outs, o.max_difference)) status = 1;

  if (o.time) {
    std::printf("median of %d over %d input sets, after %d warm-up runs, ms:\n", o.reps, o.sets, o.warmup);
    const struct {
      const char* name;
      cudaError_t (Launches::*step)(const Run&) const;
    } steps[] = {{"carry forward", &Launches::carry_forward},
                 {"chunk forward", &Launches::chunk_forward},
                 {"chunk backward (scores and inputs passes)", &Launches::chunk_backward},
                 {"carry backward", &Launches::carry_backward},
                 {"all four (forward and backward)", &Launches::all}};
    for (const auto& step : steps) {
      const double ms = median_ms([&](const Run& r) { return (launch.*step.step)(r); }, runs, o);
      std::printf("  %-42s %8.3f\n", step.name, ms);
    }
  }
  for (Run* r : owned) delete r;
  return status;
}
