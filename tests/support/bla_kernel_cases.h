// What the BLA kernels' tests share, on a GPU (tests/cuda/bla_kernel_test.cpp)
// and under the CPU emulation (tests/emulation/bla_kernel_emulation_test.cpp):
// a shape, a dtype with its tolerance, the kernels' tables, and q, k, v as
// views of one stacked projection output.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <ostream>

#include "bla/ops/bla/modal.h"
#include "bla/ops/bla/operators.h"
#include "bla_kernels/bla.h"

namespace bla::testing {

struct BlaKernelCase {
  const char* name;
  int64_t batch, seq, heads, dim, window, slots;
};
struct BlaKernelMode {
  const char* name;
  at::ScalarType dtype;
  double tolerance;  // relative, in the Frobenius norm, against float64
};
inline void PrintTo(const BlaKernelCase& c, std::ostream* os) { *os << c.name; }
inline void PrintTo(const BlaKernelMode& m, std::ostream* os) { *os << m.name; }

// The fused kernels' tables for (W, N) on `device`, from the op's operators.
inline bla::kernels::BlaChunkTables bla_kernel_tables(int64_t window, int64_t slots, c10::Device device) {
  const auto modal = bla::ops::make_bla_modal_operators(window, slots, 64);
  const auto ops = bla::ops::make_bla_operators(window, slots, 64);
  return bla::kernels::make_bla_chunk_tables(window, slots, ops.kernel, modal.basis, modal.basis_inverse,
                                             modal.alpha, modal.beta, modal.beta_t, modal.partner, device);
}

// A leaf x of qkv's values (B, T, 3 H D), and q, k, v (B, T, H, D) as views
// of it, as mixers::project_stacked makes them, or as contiguous copies.
struct StackedQkv {
  at::Tensor x, q, k, v;
};
inline StackedQkv stacked_qkv(const at::Tensor& qkv, int64_t heads, int64_t dim, bool views) {
  StackedQkv s;
  s.x = qkv.clone().requires_grad_(true);
  at::Tensor* parts[] = {&s.q, &s.k, &s.v};
  for (int64_t i = 0; i < 3; ++i) {
    const at::Tensor view = s.x.narrow(2, i * heads * dim, heads * dim).view({qkv.size(0), qkv.size(1), heads, dim});
    *parts[i] = views ? view : view.contiguous();
  }
  return s;
}

}  // namespace bla::testing
