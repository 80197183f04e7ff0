// The GSA mixer layer (docs/mixers.md, "GSA"): q, k, v with
// d_k = d_v = d_model / H; a swish feature map on q and k; a forget gate per
// slot f = logsigmoid(x W_f) / gate_normalizer; the chunked slot recurrence
// bla::ops::gated_slot_attention (softmax over m slots, scale 1); then
// RMSNorm(silu(o)) per head and W_o. Decoding keeps m slots of keys and
// values per head.
#pragma once

#include "bla/mixers/common/heads.h"

namespace bla::mixers {

struct GsaLayerOptions {
  int64_t heads = 0;             // 0 in from_config: model.heads
  int64_t slots = 64;            // m
  double gate_normalizer = 8.0;  // f = logsigmoid(.) / gate_normalizer
  int64_t chunk = 64;            // tokens per chunk of the training form
};

class GsaLayer : public MixerImpl {
 public:
  GsaLayer(const MixerContext& ctx, const GsaLayerOptions& options, int64_t head_dim);
  // Reads heads, slots, gate_normalizer, chunk.
  static std::shared_ptr<MixerImpl> from_config(config::Section& params, const MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override;
  torch::Tensor step(const torch::Tensor& x, MixerState& state) override;
  // H * m * (d_k + d_v) (= 2 * m * d_model).
  int64_t state_numel(int64_t context) const override;
  std::string describe() const override;

  // f: x (..., d_model) -> (..., H * m), every entry <= 0.
  torch::Tensor log_forget(const torch::Tensor& x);

 private:
  // W_o(RMSNorm(silu(o)) per head); o (..., H, d_v).
  torch::Tensor output(const torch::Tensor& o);

  GsaLayerOptions options_;
  int64_t head_dim_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
  torch::nn::Linear forget_proj_{nullptr};  // W_f: d_model -> H * m, no bias
  torch::Tensor norm_weight_;               // (d_v), shared by the heads
  double norm_eps_;                         // model.norm_eps
};

}  // namespace bla::mixers
