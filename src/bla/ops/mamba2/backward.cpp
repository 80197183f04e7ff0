// ssd_backward: see backward.h for the identities it applies.
#include "bla/ops/mamba2/backward.h"

#include <torch/torch.h>

#include "bla/ops/checks.h"
#include "bla/ops/mamba2/internal.h"
#include "bla/ops/scan.h"

namespace bla::ops {

namespace {

constexpr int64_t kTime = 1;  // time-major layout (B, T, H, ...)

at::Tensor reversed(const at::Tensor& t) { return t.flip({kTime}); }

// The log decays of the reversed pass: position r of the reversed sequence
// gets l_{T-r}, i.e. l moved one token earlier (the last gets 0), then reversed.
at::Tensor reversed_decays(const at::Tensor& l) {
  const int64_t T = l.size(kTime);
  return reversed(at::cat({l.narrow(kTime, 1, T - 1), at::zeros_like(l.narrow(kTime, 0, 1))}, kTime));
}

// The reverse running sum over time in float64 (it adds up as many terms as
// the sequence has tokens), time innermost (scan.h).
at::Tensor reverse_cumsum(const at::Tensor& x) { return reverse_running_sum(x.to(at::kDouble), kTime); }

// (B, T, H, N) per head -> (B, T, G, N): the sum over each group's heads.
at::Tensor group_sum(const at::Tensor& t, int64_t groups) {
  return t.view({t.size(0), t.size(1), groups, t.size(2) / groups, t.size(3)}).sum(3);
}

}  // namespace

SsdGrads ssd_backward(const SsdForwardPass& forward, const at::Tensor& x, const at::Tensor& log_decay,
                      const at::Tensor& key_scale, const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& dy) {
  const int64_t H = x.size(2), G = Bm.size(2);
  const auto dtype = x.scalar_type();
  const auto acc = compute_dtype(dtype);
  // Per-head operands in the passes' input dtype; every pass returns acc.
  const auto Bh = mamba2_internal::expand_groups(Bm, H);
  const auto Ch = mamba2_internal::expand_groups(Cm, H).contiguous();
  const auto u = (Bh.to(acc) * key_scale.to(acc).unsqueeze(-1)).to(dtype).contiguous();
  const auto g = dy.to(dtype).contiguous();
  const auto l_back = reversed_decays(log_decay);
  const at::Tensor none;
  const auto dCh = forward(u, log_decay, none, x, g, true);
  const auto du = reversed(forward(reversed(Ch), l_back, none, reversed(g), reversed(x), true));
  const auto dx = reversed(forward(reversed(g), l_back, none, reversed(Ch), reversed(u), true));
  const auto dLam = (Ch.to(acc) * dCh).sum(-1) - (u.to(acc) * du).sum(-1);
  return {dx.to(dtype), reverse_cumsum(dLam).to(log_decay.scalar_type()),
          (Bh.to(acc) * du).sum(-1).to(key_scale.scalar_type()),
          group_sum(du * key_scale.to(acc).unsqueeze(-1), G).to(Bm.scalar_type()),
          group_sum(dCh, G).to(Cm.scalar_type())};
}

}  // namespace bla::ops
