// What the SWA kernels' tests share, on a GPU (tests/cuda/swa_kernel_test.cpp)
// and under the CPU emulation (tests/emulation/swa_kernel_emulation_test.cpp):
// a shape, a kernel family with its dtype and tolerance, random inputs on a
// device, and masked softmax attention in float64 straight from the
// definition (docs/mixers.md, SWA: keys t - W < s <= t; GatedFWA's logit
// bias bias_t - bias_s), with autograd gradients.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <ostream>

#include "bla_kernels/swa.h"

namespace bla::testing {

struct SwaKernelCase {
  const char* name;
  int64_t batch, seq, heads, dim, window;
  enum Bias { kNoBias, kGateBias, kRandomBias } bias = kNoBias;
  bool strided_inputs = false;  // q, k, v as permuted views, not contiguous
};

struct SwaKernelMode {
  const char* name;
  at::ScalarType dtype;
  bla::kernels::SwaPath path;
  double tolerance;  // on ||x - ref|| / ||ref||
};
inline void PrintTo(const SwaKernelCase& c, std::ostream* os) { *os << c.name; }
inline void PrintTo(const SwaKernelMode& m, std::ostream* os) { *os << m.name; }

struct SwaKernelInputs {
  at::Tensor q, k, v, bias, grad_out;
};

inline SwaKernelInputs swa_kernel_inputs(const SwaKernelCase& c, at::ScalarType dtype, c10::Device device) {
  const auto f32 = torch::TensorOptions().device(device).dtype(at::kFloat);
  SwaKernelInputs in;
  auto draw = [&] {
    if (c.strided_inputs)  // drawn as (B, H, T, D), handed over as a (B, T, H, D) view
      return torch::randn({c.batch, c.heads, c.seq, c.dim}, f32).to(dtype).permute({0, 2, 1, 3});
    return torch::randn({c.batch, c.seq, c.heads, c.dim}, f32).to(dtype);
  };
  in.q = draw();
  in.k = draw();
  in.v = draw();
  in.grad_out = torch::randn({c.batch, c.seq, c.heads, c.dim}, f32).to(dtype);
  if (c.bias == SwaKernelCase::kGateBias)  // GatedFWA: cumulative log of a forget gate, decreasing in t
    in.bias = torch::cumsum(torch::log_sigmoid(torch::randn({c.batch, c.seq, c.heads}, f32) + 3.0), 1);
  else if (c.bias == SwaKernelCase::kRandomBias)
    in.bias = 2.0 * torch::randn({c.batch, c.seq, c.heads}, f32);
  return in;
}

struct SwaKernelExpected {
  at::Tensor out, lse, dq, dk, dv, dbias;
};

inline SwaKernelExpected swa_reference(const SwaKernelInputs& in, int64_t window, double scale) {
  torch::AutoGradMode grad_on(true);
  auto q = in.q.detach().to(at::kDouble).requires_grad_(true);
  auto k = in.k.detach().to(at::kDouble).requires_grad_(true);
  auto v = in.v.detach().to(at::kDouble).requires_grad_(true);
  at::Tensor bias;
  if (in.bias.defined()) bias = in.bias.detach().to(at::kDouble).requires_grad_(true);
  const int64_t T = q.size(1);
  const int64_t W = (window <= 0 || window >= T) ? T : window;
  auto qh = q.permute({0, 2, 1, 3}), kh = k.permute({0, 2, 1, 3}), vh = v.permute({0, 2, 1, 3});
  auto logits = torch::matmul(qh, kh.transpose(-1, -2)) * scale;  // (B, H, T, T)
  if (bias.defined()) {
    auto bh = bias.permute({0, 2, 1});  // (B, H, T)
    logits = logits + bh.unsqueeze(-1) - bh.unsqueeze(-2);
  }
  auto t = torch::arange(T, torch::TensorOptions().device(q.device()).dtype(at::kLong)).unsqueeze(1);
  auto s = t.transpose(0, 1);
  auto visible = (s <= t).logical_and(t - s < W);
  logits = logits.masked_fill(visible.logical_not(), -std::numeric_limits<double>::infinity());
  SwaKernelExpected e;
  e.lse = logits.logsumexp(-1).detach();
  auto out = torch::matmul(torch::softmax(logits, -1), vh).permute({0, 2, 1, 3});
  e.out = out.detach();
  out.backward(in.grad_out.to(at::kDouble));
  e.dq = q.grad();
  e.dk = k.grad();
  e.dv = v.grad();
  if (bias.defined()) e.dbias = bias.grad();
  return e;
}

}  // namespace bla::testing
