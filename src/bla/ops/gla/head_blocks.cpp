#include "bla/ops/gla/head_blocks.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bla::ops {

namespace {

// [start, length) of the blocks that split `width` columns into as few blocks
// of at most `most` as it takes, as evenly as they can (the first ones one
// column wider where they differ).
std::vector<std::pair<int64_t, int64_t>> blocks_of(int64_t width, int64_t most) {
  const int64_t count = (width + most - 1) / most;
  std::vector<std::pair<int64_t, int64_t>> blocks;
  for (int64_t i = 0, start = 0; i < count; ++i) {
    const int64_t length = width / count + (i < width % count ? 1 : 0);
    blocks.emplace_back(start, length);
    start += length;
  }
  return blocks;
}

}  // namespace

at::Tensor over_head_blocks(const StatefulGatedPass& pass, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const at::Tensor& g, DecayAxis axis, int64_t most,
                            at::Tensor* final_state) {
  if (most < 1) throw std::invalid_argument("over_head_blocks: most must be >= 1, got " + std::to_string(most));
  const int64_t dk = q.size(3), dv = v.size(3);
  if (dk <= most && dv <= most) return pass(q, k, v, g, final_state);
  const bool value_axis = axis == DecayAxis::Value;
  at::Tensor whole, state;  // the output, once the first block says its dtype and memory order
  for (const auto& [v0, vn] : blocks_of(dv, most)) {
    at::Tensor out;
    for (const auto& [k0, kn] : blocks_of(dk, most)) {
      at::Tensor block_state;
      const auto gate = value_axis ? g.narrow(3, v0, vn) : g.narrow(3, k0, kn);
      auto part = pass(q.narrow(3, k0, kn), k.narrow(3, k0, kn), v.narrow(3, v0, vn), gate,
                       final_state != nullptr ? &block_state : nullptr);
      out = out.defined() ? out.add_(part) : part;
      if (final_state != nullptr) {
        if (!state.defined()) state = at::empty({q.size(0), q.size(1), dk, dv}, block_state.options());
        state.narrow(2, k0, kn).narrow(3, v0, vn).copy_(block_state);
      }
    }
    if (vn == dv) {
      whole = out;
    } else {
      if (!whole.defined()) {
        // In the blocks' memory order: token-major (B, T, H, Dv) where theirs is (a pass's output follows q's).
        const bool token_major = out.stride(1) < out.stride(2);
        whole = token_major ? at::empty({q.size(0), q.size(2), q.size(1), dv}, out.options()).transpose(1, 2)
                            : at::empty({q.size(0), q.size(1), q.size(2), dv}, out.options());
      }
      whole.narrow(3, v0, vn).copy_(out);
    }
  }
  if (final_state != nullptr) *final_state = state;
  return whole;
}

}  // namespace bla::ops
