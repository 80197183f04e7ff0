// Blurry Window Attention's chunked form on CUDA, in the modal basis of the
// slot transition (src/bla/ops/bla/modal.h), as two kernels each way:
//   - the carry: the slots before every chunk of 64 tokens, one sequential
//     pass over the chunks per (32 columns, head, batch), keys and values in
//     one launch (bla_carry.cu);
//   - the chunk step: both passes (scores, mask, softmax, output) fused per
//     chunk (bla_chunk_forward.cu, bla_chunk_backward.cu).
// bla_attention runs both (bla::ops::blurry_window_attention calls it on
// CUDA); bla_chunk_attention runs the chunk step alone on given slots.
//
// Layout: q, k, v, out (B, T, H, D) with D in {64, 128}, out contiguous;
// q, k, v are read where their heads' rows are contiguous and their tokens a
// fixed stride apart (views of the stacked projection), else copied; modal slots
// (B, H, nc, N, D) float32 with nc = ceil(T / 64). bf16 or float32 inputs,
// float32 arithmetic throughout (like the LibTorch form).
//
// This header carries no CUDA types: the library's dispatch includes it from
// plain C++ files.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace bla::kernels {

// Tokens per chunk of the kernel: the modal slots are taken every this many.
constexpr int64_t kBlaKernelChunk = 64;

// The fixed tables of one (W, N), float32 on one device, zero-padded to
// `padded` slots (64 or 128).
struct BlaChunkTables {
  int64_t window = 0;
  int64_t slots = 0;
  int64_t padded = 0;
  at::Tensor inject;                 // (NP, 64) R^-1 [h(63), ..., h(0)]: a chunk into the slots after it
  at::Tensor h, h_t;                 // (64, NP) h(tau) = A^tau b; its transpose
  at::Tensor basis, basis_t;         // (NP, NP) R; R^T
  at::Tensor alpha, beta, beta_t;    // (64, NP) the modal row op of B^(i+1), ops/bla/modal.h
  at::Tensor partner;                // (NP) int32
  // inject, h, h_t, basis, basis_t rounded to tf32 (tf32_rounded): what the
  // tensor-core products of bf16 inputs read, as they are, in place of the
  // tables above (which float32 inputs' products read in full).
  at::Tensor inject_tf32, h_tf32, h_t_tf32, basis_tf32, basis_t_tf32;
};

// x (float32) rounded to tf32 as the tensor cores' cvt.rna.tf32.f32 rounds:
// to nearest at 10 mantissa bits, ties away from zero, the 13 low bits 0;
// infinities and NaN as they are. Any device.
at::Tensor tf32_rounded(const at::Tensor& x);

// From unpadded tables of any floating dtype (float64 best): h (64, N),
// basis and its inverse (N, N), alpha/beta/beta_t (64, N), partner (N) integer.
BlaChunkTables make_bla_chunk_tables(int64_t window, int64_t slots, const at::Tensor& h, const at::Tensor& basis,
                                     const at::Tensor& basis_inverse, const at::Tensor& alpha,
                                     const at::Tensor& beta, const at::Tensor& beta_t, const at::Tensor& partner,
                                     c10::Device device);

// True when the kernel handles these inputs: CUDA, one device, all bf16 or
// all float32, q, k, v of one shape (B, T, H, D), D = 64 or 128, 1 <= N <=
// 128. Otherwise false, and *why (if given) says why.
bool bla_chunk_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t slots,
                         std::string* why = nullptr);

// The chunked form from empty slots at position 0, both kernels: q, k, v
// (B, T, H, D) -> (B, T, H, D). Differentiable in q, k, v: when any of them
// requires grad, the forward keeps the modal slots and the slot
// probabilities (B, H, nc, 64, NP) float32 for the backward. scale <= 0
// means 1/sqrt(D). Throws std::invalid_argument when unsupported.
at::Tensor bla_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlaChunkTables& tables,
                         double scale);

// The chunk step alone on given modal slots (tests, bla-bench --op bla-chunk).
// Differentiable: gradients flow to q, k, v and both modal slot tensors.
// scale <= 0 means 1/sqrt(D). Throws std::invalid_argument when unsupported.
at::Tensor bla_chunk_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& modal_keys, const at::Tensor& modal_values,
                               const BlaChunkTables& tables, double scale);

// The raw passes into caller-provided buffers (tests poison them): out like
// q; grad_q/k/v like q; grad_modal_* (B, H, nc, N, D) float32; all
// contiguous and 32-byte aligned (fresh allocations are). The backward
// recomputes the probabilities.
void bla_chunk_forward_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& modal_keys, const at::Tensor& modal_values, const BlaChunkTables& tables,
                           double scale, at::Tensor& out);
void bla_chunk_backward_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& modal_keys, const at::Tensor& modal_values,
                            const BlaChunkTables& tables, double scale, const at::Tensor& grad_out,
                            at::Tensor& grad_q, at::Tensor& grad_k, at::Tensor& grad_v, at::Tensor& grad_modal_keys,
                            at::Tensor& grad_modal_values);

}  // namespace bla::kernels
