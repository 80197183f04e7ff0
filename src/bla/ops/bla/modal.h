// The slot transition A of BLA in its real modal basis, for the fused CUDA
// kernels (kernels/bla_*.cu, docs/performance.md "The fused BLA kernels").
//
// For N < W, A is diagonalisable with a well-conditioned eigenbasis (cond <=
// ~200 for every (W, N) tried; N = W is a nilpotent shift and is not: that
// case is SWA and runs the SWA kernel). In real form A = R B R^-1, where B
// is block diagonal: 1x1 blocks for real eigenvalues, 2x2 rotation-scale
// blocks for conjugate pairs. Then the chunked form's per-row term
// A^(i+1) (S_K q_i), which applies a different N x N matrix to each row of
// a chunk, becomes two ordinary matrix products around a per-row, per-mode
// scale: R [B^(i+1) ((R^-1 S_K) q_i)], where B^(i+1) touches each mode and
// at most one partner. Everything here is built in float64 on the CPU.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace bla::ops {

struct BlaModalOperators {
  int64_t window = 0;
  int64_t slots = 0;
  int64_t chunk = 0;
  double basis_condition = 0.0;  // cond(R), 2-norm
  at::Tensor basis;              // (N, N) R: columns are real modes (Re v, Im v of each pair)
  at::Tensor basis_inverse;      // (N, N) R^-1
  at::Tensor partner;            // (N) int64: the other mode of m's 2x2 block, or m itself
  // For n = i + 1, i = 0..C-1 (the row of a chunk), with Bn = B^n:
  at::Tensor alpha;   // (C, N) Bn[m, m]
  at::Tensor beta;    // (C, N) Bn[m, partner(m)] (0 for a real mode): (Bn y)_m = alpha y_m + beta y_p
  at::Tensor beta_t;  // (C, N) Bn[partner(m), m] (0 for a real mode): (Bn^T y)_m = alpha y_m + beta_t y_p
};

// Whether the modal form is usable for (W, N): N < W, and the real modal basis
// reproduces A^n (n <= chunk) to 1e-9 with cond(R) <= 1e4. If not, *why says so.
bool bla_modal_supported(int64_t window, int64_t slots, int64_t chunk, std::string* why = nullptr);

// Builds the modal operators in float64 on the CPU; throws std::invalid_argument
// (with the reason of bla_modal_supported) where the form is not usable.
BlaModalOperators make_bla_modal_operators(int64_t window, int64_t slots, int64_t chunk);

}  // namespace bla::ops
