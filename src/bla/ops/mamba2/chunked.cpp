// The mamba2 op's chunked form in LibTorch ops (mamba2.h has the algorithm
// in brief): a masked attention-like product within each chunk, the states
// at the chunk ends, one product for the scan over chunks, and the
// inter-chunk term. Training on CPU, BLA_KERNELS=0 and inputs the kernels do
// not take (dispatch.cpp), and every prefill from a given state.
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "bla/ops/checks.h"
#include "bla/ops/mamba2/internal.h"
#include "bla/ops/mamba2/mamba2.h"

namespace bla::ops {
namespace {

// Pads dimension 1 (time) at the end with zeros up to `length`.
at::Tensor pad_time(const at::Tensor& t, int64_t length) {
  const int64_t extra = length - t.size(1);
  if (extra == 0) return t;
  std::vector<int64_t> pad(2 * (t.dim() - 1), 0);
  pad.back() = extra;  // constant_pad_nd lists pads from the last dimension backwards
  return at::constant_pad_nd(t, pad, 0);
}

// z (..., n) -> S (..., n, n) with S[i][j] = z_{j+1} + ... + z_i for j <= i and
// -inf above the diagonal. Each entry sums only its own terms (a masked cumsum,
// not a difference of running totals), so no precision is lost however long
// the sequence of chunks.
at::Tensor segment_sums(const at::Tensor& z) {
  const int64_t n = z.size(-1);
  auto opts = z.options().dtype(at::kBool);
  auto strictly_lower = at::ones({n, n}, opts).tril(-1);
  std::vector<int64_t> square(z.sizes().begin(), z.sizes().end());
  square.push_back(n);
  auto terms = z.unsqueeze(-1).expand(square).masked_fill(strictly_lower.logical_not(), 0);  // [i][j] = z_i if i > j
  auto sums = terms.cumsum(-2);
  auto lower = at::ones({n, n}, opts).tril();
  return sums.masked_fill(lower.logical_not(), -std::numeric_limits<double>::infinity());
}

}  // namespace

namespace mamba2_internal {

SsdDecay ssd_decay(const at::Tensor& dt, const at::Tensor& A) {
  const auto acc = compute_dtype(dt.scalar_type());
  const auto dt_acc = dt.to(acc);
  return {dt_acc * A.to(acc).view({1, 1, -1}), dt_acc};
}

std::pair<at::Tensor, at::Tensor> ssd_chunked(const at::Tensor& x, const at::Tensor& log_decay,
                                              const at::Tensor& key_scale, const at::Tensor& Bm, const at::Tensor& Cm,
                                              int64_t chunk, const at::Tensor& initial) {
  const int64_t Bsz = x.size(0), T = x.size(1), H = x.size(2), P = x.size(3), G = Bm.size(2), N = Bm.size(3);
  const int64_t R = H / G;  // heads per group
  if (T == 0) {
    auto h0 = initial.defined() ? initial : at::zeros({Bsz, H, N, P}, x.options());
    return {at::zeros_like(x), h0};
  }
  const int64_t L = std::min(chunk, T);  // a short sequence is one unpadded chunk
  const int64_t nc = (T + L - 1) / L;
  const int64_t Tp = nc * L;
  // Log decays are summed in at least float32 even for half inputs.
  const auto acc = compute_dtype(log_decay.scalar_type());
  const auto xt = x.scalar_type();

  // Padded tokens have log decay 0 and key scale 0 (and zero B and x): decay 1
  // and no input, so the state passes through unchanged.
  // Layout: (B, G, R, chunk, pos, ...) so groups broadcast over their heads.
  auto per_token = [&](const at::Tensor& t) {
    return pad_time(t, Tp).view({Bsz, nc, L, G, R}).permute({0, 3, 4, 1, 2}).to(acc);
  };
  auto xc = pad_time(x, Tp).view({Bsz, nc, L, G, R, P}).permute({0, 3, 4, 1, 2, 5});
  auto Bc = pad_time(Bm, Tp).view({Bsz, nc, L, G, N}).permute({0, 3, 1, 2, 4}).unsqueeze(2);  // (B,G,1,nc,L,N)
  auto Cc = pad_time(Cm, Tp).view({Bsz, nc, L, G, N}).permute({0, 3, 1, 2, 4}).unsqueeze(2);
  const at::Tensor scale = key_scale.defined() ? per_token(key_scale) : at::Tensor();  // (B,G,R,nc,L)

  // Acum_i = sum_{k <= i} l_k over the chunk; the decay from token j to token i (j <= i)
  // is exp(Acum_i - Acum_j) <= 1.
  auto Acum = per_token(log_decay).cumsum(-1);  // (B,G,R,nc,L)

  // Intra-chunk: y_i = sum_{j <= i} (C_i . B_j) exp(Acum_i - Acum_j) s_j x_j.
  auto causal = at::ones({L, L}, x.options().dtype(at::kBool)).tril();
  auto differences = Acum.unsqueeze(-1) - Acum.unsqueeze(-2);  // [i][j] = Acum_i - Acum_j
  auto decay = differences.masked_fill(causal.logical_not(), -std::numeric_limits<double>::infinity()).exp();
  if (scale.defined()) decay = decay * scale.unsqueeze(-2);
  auto weights = Cc.matmul(Bc.transpose(-1, -2)) * decay.to(xt);  // (B,G,R,nc,L,L)
  auto y = weights.matmul(xc);                                    // (B,G,R,nc,L,P)

  // State each chunk adds by its end: sum_j exp(Acum_last - Acum_j) s_j B_j x_j^T.
  auto to_end = (Acum.narrow(-1, L - 1, 1) - Acum).exp();
  if (scale.defined()) to_end = to_end * scale;
  auto chunk_states = (Bc * to_end.unsqueeze(-1).to(xt)).transpose(-1, -2).matmul(xc);  // (B,G,R,nc,N,P)

  // Scan over chunks, as one product: with the initial state as "chunk -1" and the
  // chunk totals z = (0, Acum_last of chunk 0, ...), the state entering chunk c is
  // sum_{c' <= c} exp(z_{c'+1} + ... + z_c) states_{c'}; entry nc is the final state.
  auto S0 = initial.defined() ? initial.to(xt).view({Bsz, G, R, 1, N, P})
                              : at::zeros({Bsz, G, R, 1, N, P}, x.options());
  auto totals = at::constant_pad_nd(Acum.select(-1, L - 1), {1, 0}, 0);  // (B,G,R,nc+1)
  auto carry = segment_sums(totals).exp().to(xt);                           // (B,G,R,nc+1,nc+1)
  auto states = at::cat({S0, chunk_states}, 3).reshape({Bsz, G, R, nc + 1, N * P});
  auto entering = carry.matmul(states).view({Bsz, G, R, nc + 1, N, P});

  // Inter-chunk: y_i += exp(Acum_i) C_i . state entering the chunk.
  y = y + Cc.matmul(entering.narrow(3, 0, nc)) * Acum.exp().unsqueeze(-1).to(xt);

  y = y.permute({0, 3, 4, 1, 2, 5}).reshape({Bsz, Tp, H, P}).narrow(1, 0, T);
  auto final_state = entering.select(3, nc).reshape({Bsz, H, N, P});
  return {y, final_state};
}

at::Tensor add_skip(const at::Tensor& y, const at::Tensor& x, const at::Tensor& D) {
  return D.defined() ? y + D.to(y.scalar_type()).view({1, 1, -1, 1}) * x : y;
}

at::Tensor selective_state_space_libtorch(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                          const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& D,
                                          int64_t chunk) {
  const auto [log_decay, key_scale] = ssd_decay(dt, A);
  return add_skip(ssd_chunked(x, log_decay, key_scale, Bm, Cm, chunk, {}).first, x, D);
}

}  // namespace mamba2_internal

at::Tensor selective_state_space_with_state(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& A,
                                            const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& D,
                                            const SsdOptions& opt, SsdState& state) {
  mamba2_internal::check_chunk(opt);
  const auto d = mamba2_internal::check_sequence_inputs(x, dt, A, Bm, Cm, D);
  mamba2_internal::check_state(state, d);
  const auto [log_decay, key_scale] = mamba2_internal::ssd_decay(dt, A);
  auto [y, final_state] = mamba2_internal::ssd_chunked(x, log_decay, key_scale, Bm, Cm, opt.chunk, state.state);
  state.state = final_state.to(state.state.scalar_type());
  state.position += d.seq;
  return mamba2_internal::add_skip(y, x, D);
}

}  // namespace bla::ops
