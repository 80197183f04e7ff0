// The gated recurrence (gla.h, chunked_gated_recurrence) over head dims wider
// than a pass handles, as passes over blocks of the head dims. Both sums the
// recurrence makes over a head dim split exactly:
//   - Dk: the key axis's pair weights sum_d q_i[d] k_j[d] e^{b_i[d] - b_j[d]}
//     and the value axis's q_i . k_j are sums over d, so the output is the sum
//     of the passes over blocks of Dk (q, k and, on the key axis, g sliced);
//   - Dv: every output column e depends on column e of v (and of g on the
//     value axis) alone, so the output is the passes over blocks of Dv side
//     by side.
// The final state (B, H, Dk, Dv) is the blocks' states in their places. The
// CUDA path (dispatch.cpp) runs its tensor-core kernels, which take head
// dims up to 64, this way on wider heads.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

#include "bla/ops/gla/gla.h"

namespace bla::ops {

// One pass of the recurrence from a zero state: q, k (B, H, T, Dk), v (B, H,
// T, Dv), g (B, H, T, Dk or Dv by the axis) -> o (B, H, T, Dv), a tensor of
// its own (over_head_blocks adds into it), and the state after the last token
// (B, H, Dk, Dv) into *final_state when it is not null.
using StatefulGatedPass = std::function<at::Tensor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   const at::Tensor& g, at::Tensor* final_state)>;

// `pass` over blocks of Dk and Dv of at most `most` columns each (the dims
// split as evenly as they can; a pass whose dims fit runs once, as it is).
// The blocks are views of the inputs; the output keeps the passes' memory
// order (token-major where theirs is). Throws std::invalid_argument when
// most < 1.
at::Tensor over_head_blocks(const StatefulGatedPass& pass, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const at::Tensor& g, DecayAxis axis, int64_t most,
                            at::Tensor* final_state);

}  // namespace bla::ops
