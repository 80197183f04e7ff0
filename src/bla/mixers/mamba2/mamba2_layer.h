// The Mamba2-like mixer layer (docs/mixers.md, "Mamba2-like (SSD)"):
// in_proj -> (z, x, B, C, dt); a short causal depthwise convolution and SiLU
// on (x, B, C); the SSD recurrence (bla::ops::selective_state_space) with
// dt = softplus(dt_raw + dt_bias), A = -exp(A_log) and a D skip per head;
// then RMSNorm(y * silu(z)) and out_proj. Decoding keeps the SSD state and
// the convolution's last (conv_kernel - 1) inputs.
#pragma once

#include "bla/mixers/common/heads.h"

namespace bla::mixers {

struct Mamba2Options {
  int64_t expand = 2;       // d_inner = expand * d_model
  int64_t d_state = 64;     // N
  int64_t head_dim = 64;    // P; heads H = d_inner / P
  int64_t ngroups = 1;      // groups of B and C shared by H / ngroups heads
  int64_t conv_kernel = 4;  // causal depthwise convolution width
  int64_t chunk = 64;       // tokens per chunk of the SSD training form
  double dt_min = 0.001;    // dt starts log-uniform in [dt_min, dt_max]
  double dt_max = 0.1;
};

class Mamba2Layer : public MixerImpl {
 public:
  Mamba2Layer(const MixerContext& ctx, const Mamba2Options& options);
  // Reads the keys of Mamba2Options (same names); checks that head_dim
  // divides d_inner and ngroups divides the head count.
  static std::shared_ptr<MixerImpl> from_config(config::Section& params, const MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;
  MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const override;
  torch::Tensor step(const torch::Tensor& x, MixerState& state) override;
  // H * P * d_state + (conv_kernel - 1) * (d_inner + 2 * ngroups * d_state).
  int64_t state_numel(int64_t context) const override;
  std::string describe() const override;
  bool reads_input_in_one_product() const override { return true; }

  int64_t d_inner() const { return d_inner_; }
  int64_t heads() const { return heads_; }
  // The per-head step size before any input: softplus(dt_bias), (H).
  torch::Tensor initial_dt() const;
  // A = -exp(A_log), (H).
  torch::Tensor decay_rates() const;

 private:
  int64_t conv_channels() const { return d_inner_ + 2 * options_.ngroups * options_.d_state; }
  // Splits in_proj's output (..., width) into z, xBC, dt_raw.
  std::vector<torch::Tensor> split_projection(const torch::Tensor& projected) const;
  // out_proj(RMSNorm(y * silu(z))), the norm taken per group of d_inner / ngroups channels.
  torch::Tensor gated_output(const torch::Tensor& y, const torch::Tensor& z);

  Mamba2Options options_;
  int64_t d_model_, d_inner_, heads_;
  torch::nn::Linear in_proj_{nullptr}, out_proj_{nullptr};
  torch::Tensor conv_weight_;  // (conv_channels, K): column k weighs the input K-1-k tokens back
  torch::Tensor conv_bias_;    // (conv_channels)
  torch::Tensor dt_bias_;      // (H)
  torch::Tensor A_log_;        // (H)
  torch::Tensor D_;            // (H)
  torch::Tensor norm_weight_;  // (d_inner)
  double norm_eps_;            // model.norm_eps
};

}  // namespace bla::mixers
