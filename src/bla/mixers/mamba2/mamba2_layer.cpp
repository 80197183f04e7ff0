#include "bla/mixers/mamba2/mamba2_layer.h"

#include "bla/config/section.h"
#include "bla/mixers/common/norm.h"
#include "bla/mixers/common/short_conv.h"
#include "bla/ops/mamba2/mamba2.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>

namespace bla::mixers {
namespace {

constexpr double kDtFloor = 1e-4;  // smallest initial dt, as in Mamba2's dt_init_floor
constexpr double kAInitMin = 1.0, kAInitMax = 16.0;

std::string number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

Mamba2Layer::Mamba2Layer(const MixerContext& ctx, const Mamba2Options& options)
    : options_(options), d_model_(ctx.d_model), d_inner_(options.expand * ctx.d_model) {
  heads_ = d_inner_ / options_.head_dim;
  const int64_t width = d_inner_ + conv_channels() + heads_;  // z, (x, B, C), dt
  in_proj_ = register_module("in_proj", make_projection(d_model_, width));
  out_proj_ = register_module("out_proj", make_projection(d_inner_, d_model_));

  torch::NoGradGuard no_grad;
  // PyTorch's Conv1d default for a depthwise kernel: U(-1/sqrt(K), 1/sqrt(K)) for weight and bias.
  const double bound = 1.0 / std::sqrt(static_cast<double>(options_.conv_kernel));
  conv_weight_ = register_parameter("conv_weight",
                                    torch::empty({conv_channels(), options_.conv_kernel}).uniform_(-bound, bound));
  conv_bias_ = register_parameter("conv_bias", torch::empty({conv_channels()}).uniform_(-bound, bound));

  // dt_bias = softplus^-1(dt0) with dt0 log-uniform in [dt_min, dt_max]
  // (docs/mixers.md); softplus^-1(y) = y + log(-expm1(-y)). Computed in float64.
  auto u = torch::rand({heads_}, torch::kDouble);
  auto dt0 = (u * (std::log(options_.dt_max) - std::log(options_.dt_min)) + std::log(options_.dt_min))
                 .exp()
                 .clamp_min(kDtFloor);
  dt_bias_ = register_parameter("dt_bias", (dt0 + torch::log(-torch::expm1(-dt0))).to(torch::kFloat));
  // A = -exp(A_log), A_log = log U[1, 16].
  A_log_ = register_parameter("A_log",
                              torch::empty({heads_}, torch::kDouble).uniform_(kAInitMin, kAInitMax).log().to(torch::kFloat));
  D_ = register_parameter("D", torch::ones({heads_}));
  norm_weight_ = register_parameter("norm_weight", torch::ones({d_inner_}));
  norm_eps_ = ctx.norm_eps;
}

namespace {
const config::Schema& mamba2_schema() {
  const Mamba2Options d;
  static const config::Schema schema(
      "model.mixers.mamba2", "Mamba2-like selective state space mixer (SSD; docs/mixers.md).",
      {config::integer_key("expand", d.expand, 1, 64, "d_inner = expand * d_model"),
       config::integer_key("d_state", d.d_state, 1, 4096, "state size N per head"),
       config::integer_key("head_dim", d.head_dim, 1, 4096, "P; heads H = d_inner / P"),
       config::integer_key("ngroups", d.ngroups, 1, 4096, "groups of B and C shared by H / ngroups heads"),
       config::integer_key("conv_kernel", d.conv_kernel, 1, 64, "causal depthwise convolution width"),
       config::integer_key("chunk", d.chunk, 1, 4096, "tokens per chunk of the SSD training form"),
       config::real_key("dt_min", d.dt_min, 1e-6, 10.0, "dt starts log-uniform in [dt_min, dt_max]"),
       config::real_key("dt_max", d.dt_max, 1e-6, 10.0, "upper end of the initial dt range")});
  return schema;
}
}  // namespace

std::shared_ptr<MixerImpl> Mamba2Layer::from_config(config::Section& params, const MixerContext& ctx) {
  const config::Schema& keys = mamba2_schema();
  Mamba2Options o;
  o.expand = params.integer(keys["expand"]);
  o.d_state = params.integer(keys["d_state"]);
  o.head_dim = params.integer(keys["head_dim"]);
  o.ngroups = params.integer(keys["ngroups"]);
  o.conv_kernel = params.integer(keys["conv_kernel"]);
  o.chunk = params.integer(keys["chunk"]);
  o.dt_min = params.real(keys["dt_min"]);
  o.dt_max = params.real(keys["dt_max"]);
  const int64_t d_inner = o.expand * ctx.d_model;
  if (d_inner % o.head_dim != 0) {
    params.fail("head_dim", "head_dim (" + std::to_string(o.head_dim) + ") must divide d_inner = expand * d_model (" +
                                std::to_string(d_inner) + "); pick a divisor of " + std::to_string(d_inner));
  }
  const int64_t heads = d_inner / o.head_dim;
  if (heads % o.ngroups != 0) {
    params.fail("ngroups", "ngroups (" + std::to_string(o.ngroups) + ") must divide the head count d_inner / head_dim (" +
                               std::to_string(heads) + "); pick a divisor of " + std::to_string(heads));
  }
  if (o.dt_min > o.dt_max) {
    params.fail("dt_min", "dt_min (" + number(o.dt_min) + ") must be <= dt_max (" + number(o.dt_max) +
                              "); lower dt_min or raise dt_max");
  }
  return std::make_shared<Mamba2Layer>(ctx, o);
}

std::vector<torch::Tensor> Mamba2Layer::split_projection(const torch::Tensor& projected) const {
  return projected.split_with_sizes({d_inner_, conv_channels(), heads_}, -1);  // z, xBC, dt_raw
}

torch::Tensor Mamba2Layer::gated_output(const torch::Tensor& y, const torch::Tensor& z) {
  return project(out_proj_, rms_norm(y * torch::silu(z), norm_weight_, norm_eps_, options_.ngroups));
}

torch::Tensor Mamba2Layer::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t G = options_.ngroups, N = options_.d_state, P = options_.head_dim;
  auto parts = split_projection(project(in_proj_, x));
  // Causal: zeros before the first token (the decode state starts as those zeros).
  auto xBC = torch::silu(short_conv(parts[1], conv_weight_, conv_bias_));
  auto pieces = xBC.split_with_sizes({d_inner_, G * N, G * N}, -1);
  auto dt = torch::softplus(parts[2] + per_member(dt_bias_, 1, parts[2]));  // (B, T, H)
  auto A = -torch::exp(A_log_);
  auto xs = pieces[0].reshape({B, T, heads_, P});
  auto Bm = pieces[1].reshape({B, T, G, N}), Cm = pieces[2].reshape({B, T, G, N});
  torch::Tensor y;
  if (const int64_t E = members_of(A_log_, 1); E > 0) {
    // An ensemble: the op takes one A and D per head, so every member's heads become heads of one batch.
    y = heads_to_members(ops::selective_state_space(members_to_heads(xs, E), members_to_heads(dt, E), A.reshape(-1),
                                                    members_to_heads(Bm, E), members_to_heads(Cm, E), D_.reshape(-1),
                                                    ops::SsdOptions{options_.chunk}),
                         E);
  } else {
    y = ops::selective_state_space(xs, dt, A, Bm, Cm, D_, ops::SsdOptions{options_.chunk});
  }
  return gated_output(y.reshape({B, T, d_inner_}), parts[0]);
}

MixerState Mamba2Layer::initial_state(int64_t batch, const torch::TensorOptions& options) const {
  MixerState state;
  state.tensors["ssm"] = ops::ssd_initial_state(batch, heads_, options_.d_state, options_.head_dim, options).state;
  state.tensors["conv"] = torch::zeros({batch, options_.conv_kernel - 1, conv_channels()}, options);
  return state;
}

torch::Tensor Mamba2Layer::step(const torch::Tensor& x, MixerState& state) {
  const int64_t B = x.size(0), K = options_.conv_kernel;
  const int64_t G = options_.ngroups, N = options_.d_state, P = options_.head_dim;
  auto parts = split_projection(project(in_proj_, x));  // (B, width) each
  auto window = torch::cat({state.tensors.at("conv").to(x.scalar_type()), parts[1].unsqueeze(1)}, 1);  // (B, K, C)
  auto xBC = torch::silu(causal_depthwise_conv(window, 1, 1, conv_weight_, conv_bias_).squeeze(1));
  state.tensors["conv"] = window.narrow(1, 1, K - 1);
  auto pieces = xBC.split_with_sizes({d_inner_, G * N, G * N}, -1);
  auto dt = torch::softplus(parts[2] + per_member(dt_bias_, 1, parts[2]));  // (B, H)
  auto A = -torch::exp(A_log_);
  ops::SsdState ssm{state.tensors.at("ssm"), state.position};
  auto y = ops::ssd_decode_step(pieces[0].reshape({B, heads_, P}), dt, A, pieces[1].reshape({B, G, N}),
                                pieces[2].reshape({B, G, N}), D_, ssm);
  state.tensors["ssm"] = ssm.state;
  state.position += 1;
  return gated_output(y.reshape({B, d_inner_}), parts[0]);
}

int64_t Mamba2Layer::state_numel(int64_t /*context*/) const {
  return heads_ * options_.head_dim * options_.d_state + (options_.conv_kernel - 1) * conv_channels();
}

torch::Tensor Mamba2Layer::initial_dt() const { return torch::softplus(dt_bias_.detach()); }

torch::Tensor Mamba2Layer::decay_rates() const { return -torch::exp(A_log_.detach()); }

std::string Mamba2Layer::describe() const {
  return "mamba2(d_inner=" + std::to_string(d_inner_) + ", heads=" + std::to_string(heads_) +
         ", head_dim=" + std::to_string(options_.head_dim) + ", d_state=" + std::to_string(options_.d_state) +
         ", ngroups=" + std::to_string(options_.ngroups) + ", conv_kernel=" + std::to_string(options_.conv_kernel) +
         ", chunk=" + std::to_string(options_.chunk) + ")";
}

BLA_REGISTER_MIXER({"mamba2", "Mamba2-like selective state space (SSD) with short causal convolution and gated RMSNorm",
                    "H*P*d_state + (conv_kernel-1)*(d_inner + 2*ngroups*d_state)", &mamba2_schema,
                    &Mamba2Layer::from_config});

}  // namespace bla::mixers
