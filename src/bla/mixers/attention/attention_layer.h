// Softmax attention and sliding-window attention (SWA) layers: projections,
// rotary embedding, then bla::ops::sliding_window_attention. Decoding keeps a
// K/V cache: all tokens for attention, the last `window` for SWA.
#pragma once

#include "bla/mixers/common/heads.h"

namespace bla::mixers {

class AttentionLayer : public MixerImpl {
 public:
  // window == 0: full causal attention.
  AttentionLayer(const MixerContext& ctx, HeadLayout layout, int64_t window, bool rope, double rope_base);
  // Reads heads, head_dim, rope, rope_base and (when windowed) window.
  static std::shared_ptr<MixerImpl> from_config(config::Section& params, const MixerContext& ctx, bool windowed);

  torch::Tensor forward(const torch::Tensor& x) override;
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override;
  torch::Tensor step(const torch::Tensor& x, MixerState& state) override;
  int64_t state_numel(int64_t context) const override;
  std::string describe() const override;
  bool reads_input_in_one_product() const override { return true; }

 private:
  HeadLayout layout_;
  int64_t window_;
  bool rope_;
  double rope_base_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
};

}  // namespace bla::mixers
