// The GatedFWA mixer layer (docs/mixers.md, "GatedFWA"): sliding-window
// attention whose logits carry the running sum of a per-token, per-head log
// gate g_t = logsigmoid(x_t w_g + b) <= 0, through
// bla::ops::gated_window_attention. q/k/v/o projections and rotary embedding
// as the SWA layer. Decoding keeps ring buffers of the last `window` keys,
// values and gate sums.
#pragma once

#include "bla/mixers/common/heads.h"

namespace bla::mixers {

struct GatedFwaOptions {
  int64_t window = 0;      // W, required
  bool rope = true;        // as SWA: rotary embedding on q and k
  double rope_base = 10000.0;
  int64_t block = 64;      // queries per block of the training form
  // Initial per-token decay -g at zero input, log-spaced over the heads from
  // gate_init_min (head 0) to gate_init_max (last head).
  double gate_init_min = 0.001;
  double gate_init_max = 0.1;
};

class GatedFwaLayer : public MixerImpl {
 public:
  GatedFwaLayer(const MixerContext& ctx, HeadLayout layout, const GatedFwaOptions& options);
  // Reads heads, head_dim, window (required), rope, rope_base, block,
  // gate_init_min, gate_init_max.
  static std::shared_ptr<MixerImpl> from_config(config::Section& params, const MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;
  // q, k, v and the gate come out of one product (heads.h, project_heads_and).
  bool reads_input_in_one_product() const override { return true; }
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override;
  torch::Tensor step(const torch::Tensor& x, MixerState& state) override;
  // min(context, W) * H * (head_dim + value_dim + 1) (= 2 * W * d_model + W * H
  // once the window is full, with H * head_dim = d_model).
  int64_t state_numel(int64_t context) const override;
  std::string describe() const override;

  // g = logsigmoid(x w_g + b): x (..., d_model) -> (..., H), every entry <= 0.
  torch::Tensor log_gate(const torch::Tensor& x);

 private:
  HeadLayout layout_;
  GatedFwaOptions options_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
  torch::nn::Linear gate_proj_{nullptr};  // d_model -> H, with bias
};

}  // namespace bla::mixers
