// CPU float64 reference of the SSD recurrence (docs/mixers.md, "Mamba2-like
// (SSD)"), forward and backward, for the kernel development harness
// ssd_chunk_dev.cu. Plain C++, no CUDA: the definition the kernels are held to.
//
// Layouts (contiguous, as src/bla/ops/mamba2/mamba2.h): x, y (B, T, H, P); dt (B, T, H),
// already softplus'ed; A (H), negative; Bm, Cm (B, T, G, N), head h reads
// group h / (H / G); D (H) or none; h0 and the final state (B, H, N, P).
//
//   h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t^T        (N x P per head)
//   y_t = C_t^T h_t + D x_t
//
// The chunked form the kernels compute (chunk of L tokens, Acum_i the
// cumulative sum of dt A from the chunk start, so Acum is non-increasing):
//   intra: y_i  = sum_{j <= i in chunk} (C_i . B_j) exp(Acum_i - Acum_j) dt_j x_j
//   state: S_c  = sum_j exp(Acum_last - Acum_j) dt_j B_j x_j^T     (N x P)
//   scan:  H_c  = exp(Acum_last of chunk c-1) H_{c-1} + S_{c-1},   H_0 = h0
//   inter: y_i += exp(Acum_i) C_i^T H_c;  y_i += D x_i
// Every exponent is a difference "later minus earlier" (<= 0).
//
// Backward of a loss L with dL/dy = dy (no gradient into the final state):
// with g_t = dL/dh_t (total), a_t = exp(dt_t A),
//   g_t   = C_t dy_t^T + a_{t+1} g_{t+1}
//   dx_t  = D dy_t + dt_t g_t^T B_t            dB_t = dt_t g_t x_t   (summed over the group's heads)
//   dC_t  = h_t dy_t                           (summed over the group's heads)
//   ddt_t = B_t^T g_t x_t + A a_t <g_t, h_{t-1}>
//   dA    = sum_t dt_t a_t <g_t, h_{t-1}>      dD = sum_t dy_t . x_t      dh0 = a_0 g_0
// (the chunked GPU backward gets the decay terms another way: ssd_chunk_kernels.cuh).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace ssd_dev {

struct SsdShape {
  int batch = 2, seq = 1024, heads = 8, head_dim = 64, groups = 1, d_state = 64;
  int heads_per_group() const { return heads / groups; }
  size_t x_size() const { return static_cast<size_t>(batch) * seq * heads * head_dim; }
  size_t dt_size() const { return static_cast<size_t>(batch) * seq * heads; }
  size_t bc_size() const { return static_cast<size_t>(batch) * seq * groups * d_state; }
  size_t state_size() const { return static_cast<size_t>(batch) * heads * d_state * head_dim; }
  size_t x_at(int b, int t, int h) const { return ((static_cast<size_t>(b) * seq + t) * heads + h) * head_dim; }
  size_t dt_at(int b, int t, int h) const { return (static_cast<size_t>(b) * seq + t) * heads + h; }
  size_t bc_at(int b, int t, int h) const {
    return ((static_cast<size_t>(b) * seq + t) * groups + h / heads_per_group()) * d_state;
  }
  size_t state_at(int b, int h) const { return (static_cast<size_t>(b) * heads + h) * d_state * head_dim; }
};

// Host inputs: float as the kernels read them (bf16 runs round x, Bm, Cm
// first), or double for the finite-difference check of the backward. D and
// h0 may be empty: no skip, zero initial state.
template <typename Real>
struct SsdInputsOf {
  std::vector<Real> x, dt, A, Bm, Cm, D, h0;
};
using SsdInputs = SsdInputsOf<float>;

struct SsdForward {
  std::vector<double> y, final_state;
};

struct SsdGradients {
  std::vector<double> dx, ddt, dA, dBm, dCm, dD, dh0;
};

// The token recurrence, one (batch, head) at a time.
template <typename Real>
SsdForward ssd_reference_forward(const SsdShape& s, const SsdInputsOf<Real>& in) {
  const int N = s.d_state, P = s.head_dim;
  SsdForward out;
  out.y.assign(s.x_size(), 0.0);
  out.final_state.assign(s.state_size(), 0.0);
  std::vector<double> h(static_cast<size_t>(N) * P);
  for (int b = 0; b < s.batch; ++b)
    for (int hd = 0; hd < s.heads; ++hd) {
      for (size_t e = 0; e < h.size(); ++e) h[e] = in.h0.empty() ? 0.0 : in.h0[s.state_at(b, hd) + e];
      const double A = in.A[hd], D = in.D.empty() ? 0.0 : in.D[hd];
      for (int t = 0; t < s.seq; ++t) {
        const double dt = in.dt[s.dt_at(b, t, hd)], a = std::exp(dt * A);
        const Real* x = &in.x[s.x_at(b, t, hd)];
        const Real* Bt = &in.Bm[s.bc_at(b, t, hd)];
        const Real* Ct = &in.Cm[s.bc_at(b, t, hd)];
        double* y = &out.y[s.x_at(b, t, hd)];
        for (int p = 0; p < P; ++p) y[p] = D * x[p];
        for (int n = 0; n < N; ++n) {
          const double db = dt * Bt[n];
          double* row = &h[static_cast<size_t>(n) * P];
          for (int p = 0; p < P; ++p) {
            row[p] = a * row[p] + db * x[p];
            y[p] += Ct[n] * row[p];
          }
        }
      }
      for (size_t e = 0; e < h.size(); ++e) out.final_state[s.state_at(b, hd) + e] = h[e];
    }
  return out;
}

// The backward of the recurrence (header comment), straight from the
// definition: the states h_t of one (batch, head) are kept, then walked back.
template <typename Real>
SsdGradients ssd_reference_backward(const SsdShape& s, const SsdInputsOf<Real>& in, const std::vector<Real>& dy) {
  const int N = s.d_state, P = s.head_dim, T = s.seq;
  const size_t NP = static_cast<size_t>(N) * P;
  SsdGradients g;
  g.dx.assign(s.x_size(), 0.0);
  g.ddt.assign(s.dt_size(), 0.0);
  g.dA.assign(s.heads, 0.0);
  g.dBm.assign(s.bc_size(), 0.0);
  g.dCm.assign(s.bc_size(), 0.0);
  if (!in.D.empty()) g.dD.assign(s.heads, 0.0);
  if (!in.h0.empty()) g.dh0.assign(s.state_size(), 0.0);
  std::vector<double> hist((static_cast<size_t>(T) + 1) * NP);  // hist[t + 1] = h_t, hist[0] = h0
  std::vector<double> gs(NP), carry(NP);
  for (int b = 0; b < s.batch; ++b)
    for (int hd = 0; hd < s.heads; ++hd) {
      const double A = in.A[hd], D = in.D.empty() ? 0.0 : in.D[hd];
      for (size_t e = 0; e < NP; ++e) hist[e] = in.h0.empty() ? 0.0 : in.h0[s.state_at(b, hd) + e];
      for (int t = 0; t < T; ++t) {
        const double dt = in.dt[s.dt_at(b, t, hd)], a = std::exp(dt * A);
        const Real* x = &in.x[s.x_at(b, t, hd)];
        const Real* Bt = &in.Bm[s.bc_at(b, t, hd)];
        const double* prev = &hist[static_cast<size_t>(t) * NP];
        double* cur = &hist[static_cast<size_t>(t + 1) * NP];
        for (int n = 0; n < N; ++n)
          for (int p = 0; p < P; ++p) cur[n * P + p] = a * prev[n * P + p] + dt * Bt[n] * x[p];
      }
      std::fill(carry.begin(), carry.end(), 0.0);  // a_{t+1} g_{t+1}
      double dA = 0.0, dD = 0.0;
      for (int t = T - 1; t >= 0; --t) {
        const double dt = in.dt[s.dt_at(b, t, hd)], a = std::exp(dt * A);
        const Real* x = &in.x[s.x_at(b, t, hd)];
        const Real* Bt = &in.Bm[s.bc_at(b, t, hd)];
        const Real* Ct = &in.Cm[s.bc_at(b, t, hd)];
        const Real* dyt = &dy[s.x_at(b, t, hd)];
        const double* prev = &hist[static_cast<size_t>(t) * NP];
        const double* cur = &hist[static_cast<size_t>(t + 1) * NP];
        for (int n = 0; n < N; ++n)
          for (int p = 0; p < P; ++p) gs[n * P + p] = carry[n * P + p] + Ct[n] * static_cast<double>(dyt[p]);
        double* dx = &g.dx[s.x_at(b, t, hd)];
        double* dB = &g.dBm[s.bc_at(b, t, hd)];
        double* dC = &g.dCm[s.bc_at(b, t, hd)];
        double direct = 0.0, decay = 0.0;
        for (int p = 0; p < P; ++p) {
          double u = 0.0;
          for (int n = 0; n < N; ++n) u += Bt[n] * gs[n * P + p];
          dx[p] = D * dyt[p] + dt * u;
          direct += u * x[p];
          dD += static_cast<double>(dyt[p]) * x[p];
        }
        for (int n = 0; n < N; ++n) {
          double gx = 0.0, hdy = 0.0;
          for (int p = 0; p < P; ++p) {
            gx += gs[n * P + p] * x[p];
            hdy += cur[n * P + p] * dyt[p];
            decay += gs[n * P + p] * prev[n * P + p];
          }
          dB[n] += dt * gx;
          dC[n] += hdy;
        }
        g.ddt[s.dt_at(b, t, hd)] = direct + A * a * decay;
        dA += dt * a * decay;
        for (size_t e = 0; e < NP; ++e) carry[e] = a * gs[e];
      }
      g.dA[hd] += dA;
      if (!g.dD.empty()) g.dD[hd] += dD;
      if (!g.dh0.empty())
        for (size_t e = 0; e < NP; ++e) g.dh0[s.state_at(b, hd) + e] = carry[e];
    }
  return g;
}

}  // namespace ssd_dev
