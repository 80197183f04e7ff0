// The gatedfwa op's checks of options and inputs (internal.h).
#include "bla/ops/gatedfwa/internal.h"

#include <torch/torch.h>

#include <string>

#include "bla/ops/checks.h"

namespace bla::ops::gatedfwa_internal {

void check_options(const GatedWindowOptions& opt) {
  if (opt.window < 1) {
    fail("gated window window (" + std::to_string(opt.window) +
         ") must be >= 1; set window to the number of keys each query sees");
  }
  if (opt.block < 1) {
    fail("gated window block (" + std::to_string(opt.block) + ") must be >= 1; use a positive query block such as 64");
  }
}

void check_sequence_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_gate) {
  require_dim("gated window", "q", q, 4, "(batch, seq, heads, head_dim)");
  require_dim("gated window", "v", v, 4, "(batch, seq, heads, head_dim_v)");
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Dk = q.size(3);
  require_shape("gated window", "k", k, {B, T, H, Dk}, "(batch, seq, heads, head_dim)");
  require_shape("gated window", "v", v, {B, T, H, v.size(3)}, "(batch, seq, heads, head_dim_v)");
  require_shape("gated window", "log_gate", log_gate, {B, T, H}, "(batch, seq, heads)");
}

}  // namespace bla::ops::gatedfwa_internal
