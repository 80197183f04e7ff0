// Internal interface between bla_autograd.cpp and the BLA chunk kernels
// (bla_chunk_forward.cu, bla_chunk_backward.cu): raw pointers and sizes only.
//
// One block per (chunk, head, batch) computes, for the chunk's C = 64 rows
// (docs/performance.md, "The fused BLA kernel"; tests/ops/bla_modal_test.cpp
// writes the same steps with LibTorch ops):
//   lag[i, tau] = <q_i, k_{i-tau}>                  (tau <= i; the skewed Q K^T)
//   z_i = scale * (lag[i] H + R Bn (U_K q_i))       (Bn = B^(i+1), per-mode row op)
//   p_i = softmax over the slots younger than the sequence
//   o_i = sum_s <p_i, h(i-s)> v_s + U_V^T Bn^T (R^T p_i)
// where U_K = R^-1 S_K and U_V = R^-1 S_V are the modal slots before the
// chunk (from the carry, bla_carry.cu). The backward recomputes the forward
// (or reads the probabilities the forward saved) in two passes
// (bla_chunk_backward.cu): the grads of
// v, U_V and the scores, then from those the grads of q, k and U_K; the
// carry's backward takes dU_K, dU_V on to k and v.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bla::kernels::detail {

constexpr int kBlaChunk = 64;  // tokens per chunk (rows per block)

enum class BlaDtype { kFloat32, kBFloat16 };

struct BlaChunkShape {
  int batch = 0;
  int seq = 0;
  int heads = 0;
  int dim = 0;     // 64 or 128
  int slots = 0;   // N
  int padded = 0;  // N rounded up to 64 or 128; tables and modal slots have this many
  int window = 0;  // W
  int chunks = 0;  // ceil(seq / 64)
  float scale = 0.f;
};

// Tables (float32, contiguous, zero beyond N): h (C, NP), h_t (NP, C),
// basis R (NP, NP), basis_t R^T (NP, NP), alpha/beta/beta_t (C, NP); partner
// (NP); inject (NP, C) = R^-1 [h(C-1), ..., h(0)], a chunk's tokens into the
// modal slots after it.
struct BlaChunkTablesView {
  const float* inject = nullptr;
  const float* h = nullptr;
  const float* h_t = nullptr;
  const float* basis = nullptr;
  const float* basis_t = nullptr;
  const float* alpha = nullptr;
  const float* beta = nullptr;
  const float* beta_t = nullptr;
  const int* partner = nullptr;
};

// q, k, v, out, grad_* (B, T, H, D) of dtype, contiguous; modal slots and
// their grads (B, H, nc, NP, D) float32, contiguous.
struct BlaChunkArgs {
  BlaChunkShape shape;
  BlaDtype dtype = BlaDtype::kBFloat16;
  BlaChunkTablesView tables;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const float* modal_keys = nullptr;
  const float* modal_values = nullptr;
  void* out = nullptr;                 // forward
  const void* grad_out = nullptr;      // backward
  void* grad_q = nullptr;
  void* grad_k = nullptr;
  void* grad_v = nullptr;
  float* grad_modal_keys = nullptr;
  float* grad_modal_values = nullptr;
  float* grad_scores = nullptr;        // backward workspace (B, H, nc, 64, NP) float32
  // (B, H, nc, 64, NP) float32, optional: the forward writes the slot
  // probabilities there, and the backward then reads them instead of
  // recomputing them (and needs no q, k in its first pass).
  float* probabilities = nullptr;
  // Elements between consecutive tokens of q, k and v (their stride over T;
  // 0: H * D, as a contiguous (B, T, H, D) tensor lies). Their batch stride is
  // T times it, their head stride D; outputs and grad_out are contiguous.
  long long q_row = 0, k_row = 0, v_row = 0;
};

// The carry between chunks in the modal basis (bla_carry.cu):
//   U_0 = 0,  U_{c+1} = B^C U_c + G_c,  G_c = inject X_c;
// forward writes U_c for every c; backward, from dU_c:
//   E_nc = 0,  E_c = dU_c + (B^C)^T E_{c+1},  dX_c = inject^T E_{c+1}.
// Columns of D never mix, so one block per (32 columns, head, batch, tensor)
// walks the chunks in order with its slice of the slots in shared memory:
// the keys and the values (tensor 0 and 1) go in one launch. x, grad_add,
// grad_x (B, T, H, D) of dtype; modal and grad_modal (B, H, nc, NP, D)
// float32.
struct BlaCarryTensor {
  const void* x = nullptr;
  long long x_row = 0;                // forward: elements between x's tokens (0: H * D), as BlaChunkArgs::q_row
  float* modal = nullptr;             // forward: U_c out
  const float* grad_modal = nullptr;  // backward: dU_c in
  const void* grad_add = nullptr;     // backward: added to dX (the chunk step's own grad of x), or null
  void* grad_x = nullptr;             // backward: grad_add + dX
};

struct BlaCarryArgs {
  BlaChunkShape shape;
  BlaDtype dtype = BlaDtype::kBFloat16;
  BlaChunkTablesView tables;  // inject, alpha/beta/beta_t (row C-1 is B^C), partner
  BlaCarryTensor tensors[2];  // keys, values
};

cudaError_t bla_carry_forward_launch(const BlaCarryArgs& args, cudaStream_t stream);
cudaError_t bla_carry_backward_launch(const BlaCarryArgs& args, cudaStream_t stream);

// Whether (dim, padded) has a compiled kernel whose shared memory fits.
bool bla_chunk_shape_supported(int dim, int padded);

cudaError_t bla_chunk_forward_launch(const BlaChunkArgs& args, cudaStream_t stream);
cudaError_t bla_chunk_backward_launch(const BlaChunkArgs& args, cudaStream_t stream);

}  // namespace bla::kernels::detail
