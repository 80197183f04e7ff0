// The log gates' gradient of the gated recurrence (src/bla/ops/gla/backward.h):
//   dg_t = sum_{u >= t} (a_u * da_u - c_u * dc_u)
// per (batch, head, column), with (a, da, c, dc) = (q, dq, k, dk) on the key
// axis and (o, do, v, dv) on the value axis; summed in float64 (it adds up
// as many terms as the sequence has tokens), written in g's element type.
// One block per 32 columns of a (batch, head) walks the sequence from its
// end in tiles of 64 tokens: each warp sums 8 rows of a tile from the last,
// the warps' totals give each warp what the later rows of the tile add, and
// a carry holds the sum of the tiles after.
#pragma once

#include <cuda_runtime.h>

#include "gla_kernels.cuh"

namespace bla::kernels::gla {

constexpr int kGateThreads = 256;
constexpr int kGateTile = 64;                          // tokens a block sums per step
constexpr int kGateRows = kGateTile / (kGateThreads / 32);  // 8 rows per warp

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
  int batch, heads, seq, width;
};

template <typename P>
__device__ __forceinline__ long long element_offset(const GlaOperand<P>& x, int b, int h, int t, int d) {
  return b * x.batch + h * x.head + t * x.token + d;
}

template <typename T>
__global__ void __launch_bounds__(kGateThreads) gla_gate_gradient(GlaGateArgs<T> a) {
  __shared__ double warp_totals[kGateThreads / 32][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int d = blockIdx.x * 32 + lane, h = blockIdx.y, b = blockIdx.z;
  const bool column = d < a.width;
  double carry = 0;  // the sum over the tiles after this one
  for (int tile = (a.seq + kGateTile - 1) / kGateTile - 1; tile >= 0; --tile) {
    const int first = tile * kGateTile + warp * kGateRows;
    double sums[kGateRows];  // sum over this warp's rows from r to its last
    double run = 0;
#pragma unroll
    for (int r = kGateRows - 1; r >= 0; --r) {
      const int t = first + r;
      if (column && t < a.seq) {
        const double x = static_cast<double>(a.a.template read<T>(element_offset(a.a, b, h, t, d))) *
                             static_cast<double>(a.da.template read<T>(element_offset(a.da, b, h, t, d))) -
                         static_cast<double>(a.c.template read<T>(element_offset(a.c, b, h, t, d))) *
                             static_cast<double>(a.dc.template read<T>(element_offset(a.dc, b, h, t, d)));
        run += x;
      }
      sums[r] = run;
    }
    warp_totals[warp][lane] = run;
    __syncthreads();
    double later = carry, tile_total = 0;
#pragma unroll
    for (int w = 0; w < kGateThreads / 32; ++w) {
      if (w > warp) later += warp_totals[w][lane];
      tile_total += warp_totals[w][lane];
    }
#pragma unroll
    for (int r = 0; r < kGateRows; ++r) {
      const int t = first + r;
      if (column && t < a.seq) a.dg.write(element_offset(a.dg, b, h, t, d), sums[r] + later);
    }
    carry += tile_total;
    __syncthreads();  // every warp has read the totals before the next tile writes them
  }
}

}  // namespace bla::kernels::gla
