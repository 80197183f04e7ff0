// A CPU stand-in for the few CUDA features the development harnesses
// (ssd_chunk_dev.cu, gla_forward_dev.cu) and the emulated kernel tests
// (tests/emulation: BLA, SWA) use, so that they run on a machine
// without a GPU (slowly, at small shapes) and catch indexing,
// synchronisation and layout mistakes before GPU time is spent. Not a
// simulator of timing or of memory-model corner cases. Kernels declare their
// dynamic shared memory with DEV_EXTERN_SHARED and are launched with
// DEV_LAUNCH (DEV_LAUNCH_ON with a stream), which this header redefines.
//
//   g++ -std=c++20 -O2 -fno-strict-aliasing -x c++ -include kernels/dev/cpu_emulation.h
//       -I/usr/local/cuda/include kernels/dev/ssd_chunk_dev.cu -o ssd_emulated -lpthread
//   ./ssd_emulated --B 1 --T 200 --H 2 --no-bench
//
// What it does: a launch runs the blocks one after another; a block runs its
// threads as OS threads with a std::barrier for __syncthreads and one per
// warp for the shuffles. __shared__ variables become function statics (one
// block at a time, so they are per block); dynamic shared memory is one
// buffer filled with NaN bytes before each block, so reading what was never
// written shows up in the results. WMMA fragments hold the whole 16x16 tile
// in every lane (loads and products done redundantly per lane, stores by lane
// 0 only); tf32 rounding is emulated. The warp-wide sm_80 instructions of
// the SWA kernels (ldmatrix, mma.sync m16n8k16 bf16) gather every lane's
// operands and give each lane its part in the PTX ISA's fragment layout;
// cp.async copies at once. Memory calls act on host memory.
#pragma once

#define BLA_CPU_EMULATION 1  // kernels leave out what has no CPU form (prefetch_l2 in device_common.cuh)

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <array>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

namespace emu {

struct ThreadState {
  uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
  dim3 block_dim, grid_dim;
  std::barrier<>* block_barrier = nullptr;
  std::barrier<>* warp_barrier = nullptr;
  float* warp_exchange = nullptr;  // 32 floats per warp
  unsigned char* warp_slots = nullptr;  // 32 slots of kSlotBytes per warp (warp_all)
};
constexpr size_t kSlotBytes = 64;
inline thread_local ThreadState tls;

constexpr size_t kDynamicSharedBytes = 256 * 1024;
alignas(128) inline unsigned char dynamic_shared[kDynamicSharedBytes];

inline void sync_block() { tls.block_barrier->arrive_and_wait(); }

// Every lane of the warp must call it (as the kernels do): value of lane src.
inline float shuffle(float v, int src) {
  const int lane = static_cast<int>(tls.thread_idx.x % 32);
  tls.warp_exchange[lane] = v;
  tls.warp_barrier->arrive_and_wait();
  const float out = tls.warp_exchange[src];
  tls.warp_barrier->arrive_and_wait();
  return out;
}

// Every lane of the warp must call it: all 32 lanes' values, by lane.
template <typename T>
std::array<T, 32> warp_all(const T& mine) {
  static_assert(sizeof(T) <= kSlotBytes && std::is_trivially_copyable_v<T>, "a lane's value fits its slot");
  const unsigned lane = tls.thread_idx.x % 32;
  std::memcpy(tls.warp_slots + lane * kSlotBytes, &mine, sizeof(T));
  tls.warp_barrier->arrive_and_wait();
  std::array<T, 32> all;
  for (unsigned l = 0; l < 32; ++l) std::memcpy(&all[l], tls.warp_slots + l * kSlotBytes, sizeof(T));
  tls.warp_barrier->arrive_and_wait();
  return all;
}

// ---- the sm_80 instructions the tensor-core SWA kernels use (swa_device.cuh) ----
// cp.async: the copy happens at once (a wait that comes too late goes unnoticed).
inline void cp_async16(void* smem, const void* gmem, bool valid) {
  if (valid) {
    std::memcpy(smem, gmem, 16);
  } else {
    std::memset(smem, 0, 16);
  }
}

inline uint32_t b16_pair(const void* row, int column) {
  uint16_t two[2];
  std::memcpy(two, static_cast<const uint16_t*>(row) + column, sizeof two);
  return static_cast<uint32_t>(two[0]) | (static_cast<uint32_t>(two[1]) << 16);
}

// ldmatrix .m8n8.x4 .b16: lane l names row l % 8 of matrix l / 8; lane l
// receives, of each matrix i, row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1
// (with trans: those of the transposed matrix), the lower column in the low half.
inline void ldmatrix_x4(uint32_t (&r)[4], const void* smem, bool trans) {
  const auto rows = warp_all(smem);
  const unsigned lane = tls.thread_idx.x % 32;
  for (int i = 0; i < 4; ++i) {
    if (!trans) {
      r[i] = b16_pair(rows[i * 8 + lane / 4], static_cast<int>(2 * (lane % 4)));
    } else {
      uint16_t lo, hi;
      std::memcpy(&lo, static_cast<const uint16_t*>(rows[i * 8 + 2 * (lane % 4)]) + lane / 4, 2);
      std::memcpy(&hi, static_cast<const uint16_t*>(rows[i * 8 + 2 * (lane % 4) + 1]) + lane / 4, 2);
      r[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
    }
  }
}

inline float bf16_bits_to_float(uint32_t bits16) {
  const uint32_t u = bits16 << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// This lane's four elements of an m16n8 mma's D = C + A B (c[0..1] at row
// g, columns 2t and 2t + 1; c[2..3] at row g + 8), summed in k order.
template <int K>
inline void accumulate_lane(float (&c)[4], const float (&A)[16][K], const float (&B)[K][8]) {
  const unsigned lane = tls.thread_idx.x % 32;
  const int g = static_cast<int>(lane / 4), t = static_cast<int>(lane % 4);
  for (int e = 0; e < 4; ++e) {
    const int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
    float sum = c[e];
    for (int k = 0; k < K; ++k) sum += A[row][k] * B[k][col];
    c[e] = sum;
  }
}

// mma.sync .m16n8k16 .row.col .f32.bf16.bf16.f32, c += a b, in the PTX ISA's
// fragment layouts (g = lane / 4, t = lane % 4): a[0] holds A[g][2t..2t+1],
// a[1] A[g+8][2t..], a[2] A[g][2t+8..], a[3] A[g+8][2t+8..]; b0 holds
// B[2t..2t+1][g], b1 B[2t+8..][g]; c[0..1] are D[g][2t..2t+1], c[2..3]
// D[g+8][2t..]. Products are exact in float32; the sums run in k order.
inline void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  struct Fragments {
    uint32_t a[4], b0, b1;
  };
  const auto all = warp_all(Fragments{{a[0], a[1], a[2], a[3]}, b0, b1});
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    const auto& f = all[l];
    for (int j = 0; j < 2; ++j) {
      A[g][2 * t + j] = bf16_bits_to_float((f.a[0] >> (16 * j)) & 0xffffu);
      A[g + 8][2 * t + j] = bf16_bits_to_float((f.a[1] >> (16 * j)) & 0xffffu);
      A[g][2 * t + 8 + j] = bf16_bits_to_float((f.a[2] >> (16 * j)) & 0xffffu);
      A[g + 8][2 * t + 8 + j] = bf16_bits_to_float((f.a[3] >> (16 * j)) & 0xffffu);
      B[2 * t + j][g] = bf16_bits_to_float((f.b0 >> (16 * j)) & 0xffffu);
      B[2 * t + 8 + j][g] = bf16_bits_to_float((f.b1 >> (16 * j)) & 0xffffu);
    }
  }
  accumulate_lane(c, A, B);
}

inline uint32_t float_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

// mma.sync .m16n8k8 .row.col .f32.tf32.tf32.f32, c += a b (g = lane / 4,
// t = lane % 4): a[0] holds A[g][t], a[1] A[g+8][t], a[2] A[g][t+4], a[3]
// A[g+8][t+4]; b0 holds B[t][g], b1 B[t+4][g]; c[0..1] are D[g][2t..2t+1],
// c[2..3] D[g+8][2t..]. The tensor cores read an operand's tf32 bits (its
// 13 low mantissa bits are dropped); the sums run in k order.
inline void mma_1688_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  struct Fragments {
    uint32_t a[4], b0, b1;
  };
  const auto all = warp_all(Fragments{{a[0], a[1], a[2], a[3]}, b0, b1});
  const auto tf32 = [](uint32_t bits) {
    bits &= 0xffffe000u;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  };
  float A[16][8], B[8][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    const auto& f = all[l];
    A[g][t] = tf32(f.a[0]);
    A[g + 8][t] = tf32(f.a[1]);
    A[g][t + 4] = tf32(f.a[2]);
    A[g + 8][t + 4] = tf32(f.a[3]);
    B[t][g] = tf32(f.b0);
    B[t + 4][g] = tf32(f.b1);
  }
  accumulate_lane(c, A, B);
}

template <typename Kernel, typename... Args>
void launch(dim3 grid, dim3 block, size_t smem, Kernel kernel, Args... args) {
  if (smem > kDynamicSharedBytes) {
    std::fprintf(stderr, "emulation: %zu bytes of dynamic shared memory requested\n", smem);
    std::exit(3);
  }
  const unsigned threads = block.x * block.y * block.z;
  if (block.y != 1 || block.z != 1 || threads % 32 != 0) {
    std::fprintf(stderr, "emulation: blocks must be one-dimensional whole warps (got %u x %u x %u)\n", block.x, block.y,
                 block.z);
    std::exit(3);
  }
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::memset(dynamic_shared, 0xff, smem);
        std::barrier<> block_barrier(threads);
        std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
        std::vector<float> exchange(threads);
        std::vector<unsigned char> slots(threads * kSlotBytes);
        for (unsigned w = 0; w < threads / 32; ++w) warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (unsigned t = 0; t < threads; ++t)
          pool.emplace_back([&, t] {
            tls.thread_idx = uint3{t, 0, 0};
            tls.block_idx = uint3{bx, by, bz};
            tls.block_dim = block;
            tls.grid_dim = grid;
            tls.block_barrier = &block_barrier;
            tls.warp_barrier = warp_barriers[t / 32].get();
            tls.warp_exchange = exchange.data() + (t / 32) * 32;
            tls.warp_slots = slots.data() + (t / 32) * 32 * kSlotBytes;
            kernel(args...);
            tls.warp_barrier->arrive_and_drop();
            tls.block_barrier->arrive_and_drop();
          });
        for (auto& th : pool) th.join();
      }
}

// DEV_LAUNCH(grid, block, smem, kernel)(args...) in place of kernel<<<grid, block, smem>>>(args...).
template <typename Kernel>
struct BoundLaunch {
  dim3 grid, block;
  size_t smem;
  Kernel kernel;
  template <typename... Args>
  void operator()(Args... args) const {
    launch(grid, block, smem, kernel, args...);
  }
};
template <typename Kernel>
BoundLaunch<Kernel> bind(dim3 grid, dim3 block, size_t smem, Kernel k) {
  return BoundLaunch<Kernel>{grid, block, smem, k};
}

inline double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace emu

// ---- device built-ins ---------------------------------------------------------
#undef __shared__
#define __shared__ static
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
#define threadIdx (emu::tls.thread_idx)
#define blockIdx (emu::tls.block_idx)
#define blockDim (emu::tls.block_dim)
#define gridDim (emu::tls.grid_dim)
#define DEV_EXTERN_SHARED(type, name) type* name = reinterpret_cast<type*>(emu::dynamic_shared)
#define DEV_EXTERN_SHARED_ALIGNED(type, name, bytes) DEV_EXTERN_SHARED(type, name)
#define DEV_LAUNCH(grid, block, smem, ...) emu::bind(grid, block, smem, __VA_ARGS__)
#define DEV_LAUNCH_ON(grid, block, smem, stream, ...) emu::bind(grid, block, smem, __VA_ARGS__)

inline void __syncthreads() { emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::tls.warp_barrier->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int mask, int = 32) {
  return emu::shuffle(v, static_cast<int>(emu::tls.thread_idx.x % 32) ^ mask);
}
inline float __shfl_sync(unsigned, float v, int src, int = 32) { return emu::shuffle(v, src % 32); }
inline float __shfl_up_sync(unsigned, float v, int delta, int = 32) {
  const int lane = static_cast<int>(emu::tls.thread_idx.x % 32);
  return emu::shuffle(v, lane >= delta ? lane - delta : lane);
}
using std::max;
using std::min;

// ---- WMMA ----------------------------------------------------------------------
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

template <typename Use, int M, int N, int K, typename T = void, typename Layout = void>
struct fragment {
  static constexpr int kRows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int kCols = std::is_same_v<Use, matrix_a> ? K : N;
  using element = std::conditional_t<std::is_same_v<T, precision::tf32>, float, T>;
  static constexpr int num_elements = kRows * kCols;
  element x[num_elements];  // row-major tile, whole in every lane
};

inline float __float_to_tf32(float v) {  // round to nearest (ties away) at 10 mantissa bits
  if (!std::isfinite(v)) return v;
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, 4);
  return v;
}

inline float as_float(float v) { return v; }
inline float as_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// WMMA's rules on the GPU (a 256-bit aligned pointer; ldm a multiple of 16
// bytes): broken ones stop the emulation rather than pass silently.
template <typename P>
void check_wmma_operand(const P* p, unsigned ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || (ldm * sizeof(P)) % 16 != 0) {
    std::fprintf(stderr, "emulation: WMMA operand %p with ldm %u breaks the alignment rules\n",
                 static_cast<const void*>(p), ldm);
    std::exit(3);
  }
}

template <typename Use, int M, int N, int K, typename T, typename Layout, typename P>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const P* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, T, Layout>;
  check_wmma_operand(p, ldm);
  for (int r = 0; r < F::kRows; ++r)
    for (int c = 0; c < F::kCols; ++c)
      f.x[r * F::kCols + c] = std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[c * ldm + r];
  emu::tls.warp_barrier->arrive_and_wait();  // collective, as on the GPU
}

template <int M, int N, int K>
void fill_fragment(fragment<accumulator, M, N, K, float>& f, float v) {
  for (auto& e : f.x) e = v;
}

template <int M, int N, int K, typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  float out[M * N];
  for (int r = 0; r < M; ++r)
    for (int col = 0; col < N; ++col) {
      float acc = c.x[r * N + col];
      for (int k = 0; k < K; ++k) acc += as_float(a.x[r * K + k]) * as_float(b.x[k * N + col]);
      out[r * N + col] = acc;
    }
  std::memcpy(d.x, out, sizeof out);
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  check_wmma_operand(p, ldm);
  emu::tls.warp_barrier->arrive_and_wait();
  if (emu::tls.thread_idx.x % 32 == 0)
    for (int r = 0; r < M; ++r)
      for (int c = 0; c < N; ++c) (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * N + c];
  emu::tls.warp_barrier->arrive_and_wait();
}
}  // namespace nvcuda::wmma

// A kernel (function pointer) as the SWA launches pass it.
template <typename... A>
inline cudaError_t cudaFuncSetAttribute(void (*)(A...), cudaFuncAttribute, int) {
  return cudaSuccess;
}

// ---- runtime API on host memory --------------------------------------------------
extern "C" {
inline cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256);
  return *p != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  std::memcpy(dst, src, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* p, int v, size_t n) {
  std::memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline const char* cudaGetErrorName(cudaError_t) { return "emulated"; }
inline const char* cudaGetErrorString(cudaError_t) { return "emulated"; }
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::strcpy(p->name, "CPU emulation");
  p->major = 9;
  p->multiProcessorCount = 1;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int) {
  *v = attr == cudaDevAttrMaxSharedMemoryPerBlockOptin ? 232448 : 0;  // as an H100/H200
  return cudaSuccess;
}
inline cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
struct CUevent_st {
  double ms;
};
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st{0};
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->ms = emu::now_ms();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = static_cast<float>(b->ms - a->ms);
  return cudaSuccess;
}
}
