// The Blurry Window Attention (BLA) mixer layer: projections as attention,
// optional rotary embedding (off by default: slot ages already carry
// position, docs/mixers.md "BLA"), then bla::ops::blurry_window_attention.
//
// Per-head resolution: with `windows: [W_0, ..., W_{G-1}]` the heads split
// into G equal groups, group g covering a window of W_g tokens with the same
// number of slots N, so one layer sees several time scales at the same state
// size. Decoding keeps, per group, the slots of keys and values
// (B, H/G, N, d_k) and (B, H/G, N, d_v): H*N*(d_k + d_v) numbers whatever
// the context (docs/bla.md "Decoding").
#pragma once

#include "bla/mixers/common/heads.h"
#include "bla/ops/bla/bla.h"

#include <vector>

namespace bla::mixers {

class BlaLayer : public MixerImpl {
 public:
  // One window per head group; heads must be divisible by windows.size().
  BlaLayer(const MixerContext& ctx, HeadLayout layout, std::vector<int64_t> windows, int64_t slots, int64_t chunk,
           bool rope, double rope_base);
  // Reads heads, head_dim, window | windows, slots, chunk, rope, rope_base.
  static std::shared_ptr<MixerImpl> from_config(config::Section& params, const MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override;
  torch::Tensor step(const torch::Tensor& x, MixerState& state) override;
  int64_t state_numel(int64_t context) const override;
  std::string describe() const override;
  bool reads_input_in_one_product() const override { return true; }

  const std::vector<int64_t>& windows() const { return windows_; }

 private:
  int64_t heads_per_group() const { return layout_.heads / static_cast<int64_t>(windows_.size()); }
  ops::BlaOptions options_for(size_t group) const;

  HeadLayout layout_;
  std::vector<int64_t> windows_;
  int64_t slots_;
  int64_t chunk_;
  bool rope_;
  double rope_base_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
};

}  // namespace bla::mixers
