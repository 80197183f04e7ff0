// The log gates' gradient of the gated recurrence (src/bla/ops/gla/backward.h):
//   dg_t = sum_{u >= t} (a_u * da_u - c_u * dc_u)
// per (batch, head, column), with (a, da, c, dc) = (q, dq, k, dk) on the key
// axis and (o, do, v, dv) on the value axis; summed in float64 (it adds up
// as many terms as the sequence has tokens), written in g's element type.
// Two passes over segments of kGateSegment tokens, one block per 32 columns
// of a segment of a (batch, head): the first sums each segment (the
// workspace `totals`); the second walks its segment from the end in tiles,
// starting from the sum of the segments after it: each warp sums its rows of
// a tile from the last, the warps' totals give each warp what the later rows
// of the tile add, and a carry holds the sum of the tiles after. Both passes
// first gather a tile's four operands into shared memory (gla_kernels.cuh's
// gather: many loads in flight, one element-type branch an operand).
#pragma once

#include <cuda_runtime.h>

#include "gla_kernels.cuh"

namespace bla::kernels::gla {

constexpr int kGateThreads = 256;
constexpr int kGateWarps = kGateThreads / 32;
constexpr int kGateSegment = 256;  // tokens of one block
// Tokens of a tile: its four (rows x 32) operands take 33.8 KB of shared memory in either compute type.
template <typename T>
constexpr int kGateTile = sizeof(T) > 4 ? 32 : 64;
template <typename T>
constexpr int kGateRows = kGateTile<T> / kGateWarps;  // rows of a tile per warp
static_assert(kGateSegment % 64 == 0, "whole tiles a segment");

inline int gate_segments(int seq) { return (seq + kGateSegment - 1) / kGateSegment; }

// An output operand of any element type (gla_launch.h), written from double.
struct GlaOut : GlaOperand<void> {
  detail::GlaElement element;
  __device__ __forceinline__ void write(long long i, double x) const {
    switch (element) {
      case detail::GlaElement::kFloat64: static_cast<double*>(ptr)[i] = x; break;
      case detail::GlaElement::kBFloat16:
        static_cast<__nv_bfloat16*>(ptr)[i] = __float2bfloat16(static_cast<float>(x));
        break;
      case detail::GlaElement::kHalf: static_cast<__half*>(ptr)[i] = __float2half(static_cast<float>(x)); break;
      default: static_cast<float*>(ptr)[i] = static_cast<float>(x);
    }
  }
};

template <typename T>  // the inputs' compute type: float (any of float, bf16, half) or double
struct GlaGateArgs {
  GlaIn a, da, c, dc;
  GlaOut dg;
  double* __restrict__ totals;  // (B, H, segments, width): each segment's sum
  int batch, heads, seq, width, segments;
};

template <typename P>
__device__ __forceinline__ long long element_offset(const GlaOperand<P>& x, int b, int h, int t, int d) {
  return b * x.batch + h * x.head + t * x.token + d;
}

// A block's place: grid (column blocks x segments, heads, batch); this
// thread's column d = d0 + lane.
struct GateBlock {
  int d0, d, segment, h, b;
  bool column;  // d is one of the columns
};
template <typename T>
__device__ __forceinline__ GateBlock gate_block(const GlaGateArgs<T>& a) {
  const int column_blocks = (a.width + 31) / 32;
  const int d0 = static_cast<int>(blockIdx.x % column_blocks) * 32, d = d0 + static_cast<int>(threadIdx.x % 32);
  return {d0, d, static_cast<int>(blockIdx.x / column_blocks), static_cast<int>(blockIdx.y),
          static_cast<int>(blockIdx.z), d < a.width};
}
template <typename T>
__device__ __forceinline__ size_t segment_total_offset(const GlaGateArgs<T>& a, int b, int h, int segment, int d) {
  return ((static_cast<size_t>(b) * a.heads + h) * a.segments + segment) * a.width + d;
}

// A tile's four operands, rows first .. first + kGateTile - 1 of the block's
// 32 columns (0 past the sequence or the width), into x[operand][row][column].
template <typename T>
struct GateTile {
  T x[4][kGateTile<T>][33];

  __device__ __forceinline__ void load(const GlaGateArgs<T>& a, const GateBlock& k, int first) {
    const GlaIn* operands[4] = {&a.a, &a.da, &a.c, &a.dc};
#pragma unroll
    for (int o = 0; o < 4; ++o) {
      const GlaIn& in = *operands[o];
      T(*dst)[33] = x[o];
      gather<T>(
          in, kGateTile<T> * 32,
          [=](int idx) {
            const int t = first + idx / 32, d = k.d0 + idx % 32;
            return t < a.seq && d < a.width ? element_offset(in, k.b, k.h, t, d) : -1LL;
          },
          [=](int idx, T v) { dst[idx / 32][idx % 32] = v; });
    }
  }
  // a da - c dc of row r in this thread's column.
  __device__ __forceinline__ double term(int r, int lane) const {
    return static_cast<double>(x[0][r][lane]) * static_cast<double>(x[1][r][lane]) -
           static_cast<double>(x[2][r][lane]) * static_cast<double>(x[3][r][lane]);
  }
};

// Pass 1: each segment's sum, per column.
template <typename T>
__global__ void __launch_bounds__(kGateThreads) gla_gate_segment_totals(GlaGateArgs<T> a) {
  __shared__ GateTile<T> tile;
  __shared__ double warp_totals[kGateWarps][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const GateBlock k = gate_block(a);
  const int first = k.segment * kGateSegment, end = min(first + kGateSegment, a.seq);
  double sum = 0;
  for (int t0 = first; t0 < end; t0 += kGateTile<T>) {
    tile.load(a, k, t0);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kGateRows<T>; ++r) sum += tile.term(warp * kGateRows<T> + r, lane);  // 0 past the end
    __syncthreads();  // every warp has read the tile before the next one lands
  }
  warp_totals[warp][lane] = sum;
  __syncthreads();
  if (warp == 0 && k.column) {
    double total = 0;
#pragma unroll
    for (int w = 0; w < kGateWarps; ++w) total += warp_totals[w][lane];
    a.totals[segment_total_offset(a, k.b, k.h, k.segment, k.d)] = total;
  }
}

// Pass 2: dg over the segment, from the sum of the segments after it.
template <typename T>
__global__ void __launch_bounds__(kGateThreads) gla_gate_gradient(GlaGateArgs<T> a) {
  constexpr int R = kGateRows<T>;
  __shared__ GateTile<T> tile;
  __shared__ double warp_totals[kGateWarps][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const GateBlock k = gate_block(a);
  double carry = 0;  // the sum over the rows after the current tile
  if (k.column)
    for (int later = k.segment + 1; later < a.segments; ++later)
      carry += a.totals[segment_total_offset(a, k.b, k.h, later, k.d)];
  const int first = k.segment * kGateSegment, end = min(first + kGateSegment, a.seq);
  for (int t0 = first + (end - 1 - first) / kGateTile<T> * kGateTile<T>; t0 >= first; t0 -= kGateTile<T>) {
    tile.load(a, k, t0);
    __syncthreads();
    double sums[R];  // sum over this warp's rows from r to its last
    double run = 0;
#pragma unroll
    for (int r = R - 1; r >= 0; --r) {
      run += tile.term(warp * R + r, lane);  // 0 past the end
      sums[r] = run;
    }
    warp_totals[warp][lane] = run;
    __syncthreads();
    double later = carry, tile_total = 0;
#pragma unroll
    for (int w = 0; w < kGateWarps; ++w) {
      if (w > warp) later += warp_totals[w][lane];
      tile_total += warp_totals[w][lane];
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int t = t0 + warp * R + r;
      if (k.column && t < a.seq) a.dg.write(element_offset(a.dg, k.b, k.h, t, k.d), sums[r] + later);
    }
    carry += tile_total;
    __syncthreads();  // every warp has read the totals and the tile before the next tile writes them
  }
}

}  // namespace bla::kernels::gla
