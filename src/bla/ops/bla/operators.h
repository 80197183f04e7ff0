// The fixed linear operators of BLA's slot memory (docs/bla.md "The
// interpolation kernel", "One step of the slot memory", "Training: chunked
// two-pass form"): built in float64 by make_bla_operators, cast once per
// dtype and device by the process-wide cache bla_operators. They depend only
// on (W, N, C) and carry no grad. Defined in operators.cpp.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>

namespace bla::ops {

struct BlaOperators {
  int64_t window = 0;
  int64_t slots = 0;
  int64_t chunk = 0;
  at::Tensor shift;          // (N, N) Shift_{jl} = P_N(j - l - delta)
  at::Tensor forget_read;    // (N)    g_l = P_N(N - delta - l)
  at::Tensor forget_write;   // (N)    p_j = P_N(j - N + delta) / r
  at::Tensor A;              // (N, N) Shift (I - p g^T)
  at::Tensor b;              // (N)    e_0 / r
  at::Tensor kernel;         // (C, N) h(tau) = A^tau b, tau = 0..C-1
  at::Tensor powers;         // (C+1, N, N) A^tau, tau = 0..C
  at::Tensor causal_kernel;  // (C, C, N) H[i, s] = h(i - s) for s <= i, else 0
};

// P_N(u), the Dirichlet kernel of the N lowest frequencies (docs/bla.md "The
// interpolation kernel"), in double precision.
double dirichlet_kernel(int64_t slots, double u);

// Builds all operators in float64 on the CPU. Throws like BlaOptions::validate.
BlaOperators make_bla_operators(int64_t window, int64_t slots, int64_t chunk);

// The operators cast to `dtype` on `device`, built once per
// (W, N, C, dtype, device) and cached for the life of the process (thread-safe).
// The returned tensors are shared with the cache: treat them as read-only.
BlaOperators bla_operators(int64_t window, int64_t slots, int64_t chunk, at::ScalarType dtype,
                           at::Device device);

// Largest |eigenvalue| of a square matrix (via at::linalg_eigvals in float64).
double spectral_radius(const at::Tensor& matrix);

}  // namespace bla::ops
