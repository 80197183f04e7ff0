// running_sum and reverse_running_sum (scan.h).
#include "bla/ops/scan.h"

#include <torch/torch.h>

#include <vector>

namespace bla::ops {

namespace {

constexpr int64_t kBlock = 64;  // positions per innermost block

}  // namespace

at::Tensor running_sum(const at::Tensor& x, int64_t dim) {
  const int64_t d = c10::maybe_wrap_dim(dim, x.dim());
  const int64_t T = x.size(d);
  auto last = x.movedim(d, -1);  // (..., T)
  if (T <= kBlock) return last.cumsum(-1).movedim(-1, d);
  const int64_t blocks = (T + kBlock - 1) / kBlock;
  if (blocks * kBlock != T) last = at::constant_pad_nd(last, {0, blocks * kBlock - T}, 0);
  std::vector<int64_t> shape(last.sizes().begin(), last.sizes().end() - 1);
  shape.push_back(blocks);
  shape.push_back(kBlock);
  const auto within = last.reshape(shape).cumsum(-1);  // (..., blocks, 64)
  const auto totals = within.select(-1, kBlock - 1);   // (..., blocks)
  const auto before = at::constant_pad_nd(totals.cumsum(-1).narrow(-1, 0, blocks - 1), {1, 0}, 0);
  return (within + before.unsqueeze(-1)).flatten(-2).narrow(-1, 0, T).movedim(-1, d);
}

at::Tensor reverse_running_sum(const at::Tensor& x, int64_t dim) {
  const int64_t d = c10::maybe_wrap_dim(dim, x.dim());
  return running_sum(x.flip({d}), d).flip({d});
}

}  // namespace bla::ops
