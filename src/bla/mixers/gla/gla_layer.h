// The GLA mixer layer (docs/mixers.md, "GLA"; flash-linear-attention's
// layer defaults): q, k with d_k = d_model * expand_k / H, v with
// d_v = d_model * expand_v / H; a low-rank decay per key channel
// g = logsigmoid(x W_g1 W_g2 + b) / gate_normalizer; the chunked recurrence
// bla::ops::gated_linear_attention; then per-head RMSNorm of o, times
// swish(x W_r), and W_o. Decoding keeps S (d_k x d_v per head).
#pragma once

#include "bla/mixers/common/heads.h"

namespace bla::mixers {

struct GlaLayerOptions {
  int64_t heads = 0;              // 0 in from_config: model.heads
  double expand_k = 0.5;          // key width H * d_k = expand_k * d_model
  double expand_v = 1.0;          // value width H * d_v = expand_v * d_model
  int64_t gate_rank = 16;         // rank of the decay projection W_g1 W_g2
  double gate_normalizer = 16.0;  // g = logsigmoid(.) / gate_normalizer
  int64_t chunk = 64;             // tokens per chunk of the training form
};

class GlaLayer : public MixerImpl {
 public:
  // key_dim and value_dim: per head.
  GlaLayer(const MixerContext& ctx, const GlaLayerOptions& options, int64_t key_dim, int64_t value_dim);
  // Reads heads, expand_k, expand_v, gate_rank, gate_normalizer, chunk.
  static std::shared_ptr<MixerImpl> from_config(config::Section& params, const MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override;
  torch::Tensor step(const torch::Tensor& x, MixerState& state) override;
  // H * d_k * d_v.
  int64_t state_numel(int64_t context) const override;
  std::string describe() const override;

  // g: x (..., d_model) -> (..., H * d_k), every entry <= 0.
  torch::Tensor log_decay(const torch::Tensor& x);

 private:
  // per-head RMSNorm(o) * swish(x W_r), then W_o. o (..., H, d_v), x (..., d_model).
  torch::Tensor output(const torch::Tensor& o, const torch::Tensor& x);

  GlaLayerOptions options_;
  int64_t key_dim_, value_dim_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
  torch::nn::Linear gate_down_{nullptr}, gate_up_{nullptr};  // W_g1 (no bias), W_g2 (with bias b)
  torch::nn::Linear output_gate_{nullptr};                   // W_r
  torch::Tensor norm_weight_;                                // (d_v), shared by the heads
  double norm_eps_;                                          // model.norm_eps
};

}  // namespace bla::mixers
