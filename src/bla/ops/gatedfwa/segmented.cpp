// The gatedfwa op as attention with a per-token logit bias (what the SWA kernel
// takes: scale q_t.k_s + bias_t - bias_s), run over segments of the sequence
// so that the bias stays local: the bias of a segment is G = cumsum(g), summed
// in float64, minus G at the segment's first key. Two errors would otherwise
// grow with the sequence:
//   - G_t - G_s from two float32 values of G is off by up to one ulp of |G_t|,
//     and |G| grows with the total decay of the sequence;
//   - the gate's gradient is the reverse cumulative sum of the bias gradient,
//     whose per-token rounding adds up over every later token; rebased per
//     segment, the terms of later segments cancel in float64.
// Segment j holds queries j*L .. j*L+L-1 and the W-1 keys before them.
#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "bla/ops/gatedfwa/internal.h"
#include "bla/ops/scan.h"

namespace bla::ops::gatedfwa_internal {
namespace {

// The overlapping windows of dimension 1 of x (B, T', ...): `count` windows of
// `size` positions, `step` apart, from position `start`, padded at the end by
// repeating the last position where they run past T'. Returns (B * count,
// size, ...), a copy.
at::Tensor stacked_windows(const at::Tensor& x, int64_t start, int64_t size, int64_t step, int64_t count) {
  const int64_t needed = start + (count - 1) * step + size;
  auto padded = x;
  if (needed > x.size(1)) {
    auto last = x.narrow(1, x.size(1) - 1, 1);
    std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
    sizes[1] = needed - x.size(1);
    padded = at::cat({x, last.expand(sizes)}, 1);
  }
  std::vector<at::Tensor> parts;
  parts.reserve(static_cast<size_t>(count));
  for (int64_t j = 0; j < count; ++j) parts.push_back(padded.narrow(1, start + j * step, size));
  auto stacked = at::stack(parts, 1);  // (B, count, size, ...)
  std::vector<int64_t> flat = {x.size(0) * count, size};
  for (int64_t d = 2; d < x.dim(); ++d) flat.push_back(x.size(d));
  return stacked.reshape(flat);
}

// stacked_windows as one autograd node. Its backward adds each window's
// gradient into one zero tensor in place, where autograd through the
// narrows and the stack would make a zero tensor of x's size per window and
// add them up (on the GPU most of the gatedfwa op's time besides the
// kernels: docs/performance.md, "GatedFWA: where its time goes"). The
// padding's gradient goes to the position it repeats.
class OverlappingWindows : public torch::autograd::Function<OverlappingWindows> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                                int64_t start, int64_t size, int64_t step, int64_t count) {
    ctx->saved_data["shape"] = x.sizes().vec();
    ctx->saved_data["start"] = start;
    ctx->saved_data["size"] = size;
    ctx->saved_data["step"] = step;
    ctx->saved_data["count"] = count;
    return {stacked_windows(x, start, size, step, count)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto shape = ctx->saved_data["shape"].toIntVector();
    const int64_t start = ctx->saved_data["start"].toInt(), size = ctx->saved_data["size"].toInt();
    const int64_t step = ctx->saved_data["step"].toInt(), count = ctx->saved_data["count"].toInt();
    const int64_t length = shape[1];
    std::vector<int64_t> per_window(shape.begin(), shape.end());
    per_window[1] = size;
    per_window.insert(per_window.begin() + 1, count);  // (B, count, size, ...)
    const at::Tensor g = grads[0].reshape(per_window);
    shape[1] = std::max(length, start + (count - 1) * step + size);
    at::Tensor gx = at::zeros(shape, g.options());
    for (int64_t j = 0; j < count; ++j) gx.narrow(1, start + j * step, size).add_(g.select(1, j));
    if (shape[1] > length)
      gx.narrow(1, length - 1, 1).add_(gx.narrow(1, length, shape[1] - length).sum(1, /*keepdim=*/true));
    return {gx.narrow(1, 0, length), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// G (B, T', H) float64 -> the bias of each window: G minus its first value,
// float32 (what the kernel reads) unless the inputs are float64.
at::Tensor local_bias(const at::Tensor& G, at::ScalarType input) {
  return (G - G.narrow(1, 0, 1)).to(input == at::kDouble ? at::kDouble : at::kFloat);
}

}  // namespace

at::Tensor overlapping_windows(const at::Tensor& x, int64_t start, int64_t size, int64_t step, int64_t count) {
  return OverlappingWindows::apply(x, start, size, step, count)[0];
}

at::Tensor segmented_gated_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& log_gate, int64_t window, int64_t segment,
                                            const BiasedAttention& attend) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Dv = v.size(3);
  const auto G = running_sum(log_gate.to(at::kDouble), 1);  // (B, T, H), T innermost on the GPU (scan.h)
  const int64_t L = segment;
  if (window < 1 || L < window) {
    throw std::invalid_argument("bla: gated window segment (" + std::to_string(L) + ") must be >= the window (" +
                                std::to_string(window) + ") and the window >= 1");
  }
  if (T <= L) return attend(q, k, v, local_bias(G, q.scalar_type()));
  // The first segment has no keys before it; the others, (T - L) queries in
  // segments of L, each see W - 1 earlier keys. The last is padded at its end
  // (padded queries are cut off; padded keys are seen by padded queries only).
  const auto dtype = q.scalar_type();
  const auto first =
      attend(q.narrow(1, 0, L), k.narrow(1, 0, L), v.narrow(1, 0, L), local_bias(G.narrow(1, 0, L), dtype));
  const int64_t lead = window - 1;  // keys before a segment that its first query sees
  const int64_t count = (T - 1) / L;  // ceil((T - L) / L) segments after the first
  const int64_t size = lead + L;
  const int64_t start = L - lead;
  auto cut = [&](const at::Tensor& x) { return overlapping_windows(x, start, size, L, count); };
  const auto rest = attend(cut(q), cut(k), cut(v), local_bias(cut(G), dtype));
  const auto queries = rest.reshape({B, count, size, H, Dv}).narrow(2, lead, L).reshape({B, count * L, H, Dv});
  return at::cat({first, queries.narrow(1, 0, T - L)}, 1);
}

}  // namespace bla::ops::gatedfwa_internal
