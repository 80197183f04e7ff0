// The log gates' gradient of the gated recurrence (src/bla/ops/gla/backward.h):
//   dg_t = sum_{u >= t} (a_u * da_u - c_u * dc_u)
// per (batch, head, column), with (a, da, c, dc) = (q, dq, k, dk) on the key
// axis and (o, do, v, dv) on the value axis; summed in float64 (it adds up
// as many terms as the sequence has tokens), written in g's element type.
// Two passes over segments of kGateSegment tokens, one block per 32 columns
// of a segment of a (batch, head): the first sums each segment (the
// workspace `totals`); the second walks its segment from the end in tiles of
// 64 tokens, starting from the sum of the segments after it: each warp sums
// 8 rows of a tile from the last, the warps' totals give each warp what the
// later rows of the tile add, and a carry holds the sum of the tiles after.
#pragma once

#include <cuda_runtime.h>

#include "gla_kernels.cuh"

namespace bla::kernels::gla {

constexpr int kGateThreads = 256;
constexpr int kGateWarps = kGateThreads / 32;
constexpr int kGateTile = 64;                        // tokens a block sums per step
constexpr int kGateRows = kGateTile / kGateWarps;    // 8 rows per warp
constexpr int kGateSegment = 4 * kGateTile;          // tokens of one block

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

// a_t da_t - c_t dc_t in column d.
template <typename T>
__device__ __forceinline__ double gate_term(const GlaGateArgs<T>& a, int b, int h, int t, int d) {
  return static_cast<double>(a.a.template read<T>(element_offset(a.a, b, h, t, d))) *
             static_cast<double>(a.da.template read<T>(element_offset(a.da, b, h, t, d))) -
         static_cast<double>(a.c.template read<T>(element_offset(a.c, b, h, t, d))) *
             static_cast<double>(a.dc.template read<T>(element_offset(a.dc, b, h, t, d)));
}

// A block's place: grid (column blocks x segments, heads, batch).
struct GateBlock {
  int d, segment, h, b;
  bool column;  // d is one of the columns
};
template <typename T>
__device__ __forceinline__ GateBlock gate_block(const GlaGateArgs<T>& a) {
  const int column_blocks = (a.width + 31) / 32;
  const int d = static_cast<int>(blockIdx.x % column_blocks) * 32 + static_cast<int>(threadIdx.x % 32);
  return {d, static_cast<int>(blockIdx.x / column_blocks), static_cast<int>(blockIdx.y), static_cast<int>(blockIdx.z),
          d < a.width};
}
template <typename T>
__device__ __forceinline__ size_t segment_total_offset(const GlaGateArgs<T>& a, int b, int h, int segment, int d) {
  return ((static_cast<size_t>(b) * a.heads + h) * a.segments + segment) * a.width + d;
}

// Pass 1: each segment's sum, per column.
template <typename T>
__global__ void __launch_bounds__(kGateThreads) gla_gate_segment_totals(GlaGateArgs<T> a) {
  __shared__ double warp_totals[kGateWarps][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const GateBlock k = gate_block(a);
  const int first = k.segment * kGateSegment, end = min(first + kGateSegment, a.seq);
  double sum = 0;
  if (k.column) {
#pragma unroll 8
    for (int t = first + warp; t < end; t += kGateWarps) sum += gate_term(a, k.b, k.h, t, k.d);
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
  __shared__ double warp_totals[kGateWarps][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const GateBlock k = gate_block(a);
  double carry = 0;  // the sum over the tiles after this one
  if (k.column)
    for (int later = k.segment + 1; later < a.segments; ++later)
      carry += a.totals[segment_total_offset(a, k.b, k.h, later, k.d)];
  const int first_tile = k.segment * (kGateSegment / kGateTile);
  const int last_tile = min(first_tile + kGateSegment / kGateTile, (a.seq + kGateTile - 1) / kGateTile) - 1;
  for (int tile = last_tile; tile >= first_tile; --tile) {
    const int first = tile * kGateTile + warp * kGateRows;
    double sums[kGateRows];  // sum over this warp's rows from r to its last
    double run = 0;
#pragma unroll
    for (int r = kGateRows - 1; r >= 0; --r) {
      const int t = first + r;
      if (k.column && t < a.seq) run += gate_term(a, k.b, k.h, t, k.d);
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
    for (int r = 0; r < kGateRows; ++r) {
      const int t = first + r;
      if (k.column && t < a.seq) a.dg.write(element_offset(a.dg, k.b, k.h, t, k.d), sums[r] + later);
    }
    carry += tile_total;
    __syncthreads();  // every warp has read the totals before the next tile writes them
  }
}

}  // namespace bla::kernels::gla
