// The algorithm of the fused BLA CUDA kernel (kernels/bla_chunk_forward.cu,
// bla_chunk_backward.cu) step by step in LibTorch ops, on any device and
// dtype (float64 in the tests): the skewed lag products with h, the per-row
// modal scales, the softmax over slots, and the hand-written backward. Used
// by tests/ops/bla_modal_test.cpp (against the chunked form and autograd) and
// tests/cuda/bla_kernel_test.cpp (against the kernel).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>

#include "bla/ops/bla/bla.h"
#include "bla/ops/bla/modal.h"

namespace bla::testing {

// (B, T, H, D) -> (B, H, nc, C, D), zero padded.
inline at::Tensor to_chunks(const at::Tensor& x, int64_t chunk) {
  const int64_t length = x.size(1), chunks = (length + chunk - 1) / chunk;
  at::Tensor per_head = at::constant_pad_nd(x.permute({0, 2, 1, 3}), {0, 0, 0, chunks * chunk - length});
  return per_head.reshape({x.size(0), x.size(2), chunks, chunk, x.size(3)});
}

// Everything one chunk step of the kernel needs besides q, k, v and the slots.
struct Tables {
  at::Tensor h, basis, basis_inverse, alpha, beta, beta_t, partner;
  at::Tensor lag_index, lower;  // (C, C): i - s clamped at 0; s <= i
  at::Tensor slot_valid;        // (nc, C, N): slot j younger than the sequence at token t
};

// Float64 tables for chunks of `chunk` tokens, nc = `chunks`, on `device`.
inline Tables make_tables(int64_t window, int64_t slots, int64_t chunk, int64_t chunks,
                          at::Device device = at::kCPU) {
  const ops::BlaOperators ops = ops::bla_operators(window, slots, chunk, at::kDouble, at::kCPU);
  const ops::BlaModalOperators modal = ops::make_bla_modal_operators(window, slots, chunk);
  Tables t;
  t.h = ops.kernel;  // (C, N)
  t.basis = modal.basis;
  t.basis_inverse = modal.basis_inverse;
  t.alpha = modal.alpha;
  t.beta = modal.beta;
  t.beta_t = modal.beta_t;
  t.partner = modal.partner;
  const at::Tensor i = at::arange(chunk).unsqueeze(1), s = at::arange(chunk).unsqueeze(0);
  t.lag_index = (i - s).clamp_min(0);
  t.lower = (s <= i).to(at::kDouble);
  const at::Tensor position = at::arange(chunks * chunk).reshape({chunks, chunk, 1});
  t.slot_valid = (at::arange(slots) * window).view({1, 1, slots}) <= position * slots;
  for (at::Tensor* x : {&t.h, &t.basis, &t.basis_inverse, &t.alpha, &t.beta, &t.beta_t, &t.partner, &t.lag_index,
                        &t.lower, &t.slot_valid})
    *x = x->to(device);
  return t;
}

// x[i, i - tau] as [i, tau] (and back: the map is its own inverse on s <= i).
inline at::Tensor skew(const at::Tensor& x, const Tables& t) {
  return x.gather(-1, t.lag_index.expand(x.sizes())) * t.lower;
}
// Row ops with B^(i+1) on the last dim: (Bn y)_m and (Bn^T y)_m.
inline at::Tensor apply_b(const at::Tensor& y, const Tables& t) {
  return t.alpha * y + t.beta * y.index_select(-1, t.partner);
}
inline at::Tensor apply_b_transposed(const at::Tensor& y, const Tables& t) {
  return t.alpha * y + t.beta_t * y.index_select(-1, t.partner);
}

struct ChunkInputs {
  at::Tensor q, k, v;          // (B, H, nc, C, D)
  at::Tensor modal_keys;       // (B, H, nc, N, D): R^-1 S_K before each chunk
  at::Tensor modal_values;     // (B, H, nc, N, D)
};

// The kernel's forward, steps as in bla_chunk_forward.cu.
inline at::Tensor kernel_forward(const ChunkInputs& in, const Tables& t, double scale, at::Tensor* weights = nullptr) {
  const at::Tensor lag_scores = skew(at::matmul(in.q, in.k.transpose(-1, -2)), t);  // [i, tau]
  const at::Tensor intra = at::matmul(lag_scores, t.h);
  const at::Tensor inter = at::matmul(apply_b(at::matmul(in.q, in.modal_keys.transpose(-1, -2)), t),
                                      t.basis.t());
  const at::Tensor z = ((intra + inter) * scale).masked_fill(t.slot_valid.logical_not(),
                                                             -std::numeric_limits<double>::infinity());
  const at::Tensor p = at::softmax(z, -1);
  if (weights != nullptr) *weights = p;
  const at::Tensor mixed = apply_b_transposed(at::matmul(p, t.basis), t);
  const at::Tensor token_weights = skew(at::matmul(p, t.h.t()), t);  // [i, s]
  return at::matmul(token_weights, in.v) + at::matmul(mixed, in.modal_values);
}

struct ChunkGrads {
  at::Tensor q, k, v, modal_keys, modal_values;
};

// The kernel's backward, steps as in bla_chunk_backward.cu.
inline ChunkGrads kernel_backward(const ChunkInputs& in, const at::Tensor& grad_out, const Tables& t, double scale) {
  at::Tensor p;
  kernel_forward(in, t, scale, &p);
  const at::Tensor mixed = apply_b_transposed(at::matmul(p, t.basis), t);
  const at::Tensor token_weights = skew(at::matmul(p, t.h.t()), t);

  const at::Tensor grad_mixed = apply_b(at::matmul(grad_out, in.modal_values.transpose(-1, -2)), t);
  at::Tensor grad_p = at::matmul(grad_mixed, t.basis.t());
  const at::Tensor grad_token_weights = at::matmul(grad_out, in.v.transpose(-1, -2)) * t.lower;
  grad_p = grad_p + at::matmul(skew(grad_token_weights, t), t.h);
  ChunkGrads g;
  g.v = at::matmul(token_weights.transpose(-1, -2), grad_out);
  g.modal_values = at::matmul(mixed.transpose(-1, -2), grad_out);
  const at::Tensor grad_z = scale * p * (grad_p - (p * grad_p).sum(-1, true));
  const at::Tensor grad_y = apply_b_transposed(at::matmul(grad_z, t.basis), t);
  const at::Tensor grad_scores = skew(at::matmul(grad_z, t.h.t()), t);  // [i, s]
  g.q = at::matmul(grad_y, in.modal_keys) + at::matmul(grad_scores, in.k);
  g.k = at::matmul(grad_scores.transpose(-1, -2), in.q);
  g.modal_keys = at::matmul(grad_y.transpose(-1, -2), in.q);
  return g;
}

}  // namespace bla::testing
