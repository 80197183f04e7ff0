#include "bla/mixers/gla/gla_layer.h"

#include "bla/config/section.h"
#include "bla/mixers/common/norm.h"
#include "bla/ops/gla/gla.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>

namespace bla::mixers {
namespace {


std::string number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// Width of `expand * d_model` split over `heads`; fails on `key` unless exact.
int64_t per_head_width(config::Section& params, const std::string& key, double expand, int64_t d_model, int64_t heads) {
  const double width = expand * static_cast<double>(d_model);
  const auto rounded = static_cast<int64_t>(std::llround(width));
  if (rounded < heads || std::abs(width - static_cast<double>(rounded)) > 1e-9 || rounded % heads != 0) {
    params.fail(key, key + " * d_model (" + number(width) + ") must be a whole multiple of heads (" +
                         std::to_string(heads) + "); pick " + key + " so that it is");
  }
  return rounded / heads;
}

}  // namespace


GlaLayer::GlaLayer(const MixerContext& ctx, const GlaLayerOptions& options, int64_t key_dim, int64_t value_dim)
    : options_(options), key_dim_(key_dim), value_dim_(value_dim) {
  const int64_t H = options.heads;
  q_proj_ = register_module("q_proj", make_projection(ctx.d_model, H * key_dim));
  k_proj_ = register_module("k_proj", make_projection(ctx.d_model, H * key_dim));
  v_proj_ = register_module("v_proj", make_projection(ctx.d_model, H * value_dim));
  o_proj_ = register_module("o_proj", make_projection(H * value_dim, ctx.d_model));
  gate_down_ = register_module("gate_down", make_projection(ctx.d_model, options.gate_rank));
  gate_up_ = register_module("gate_up",
                             torch::nn::Linear(torch::nn::LinearOptions(options.gate_rank, H * key_dim).bias(true)));
  output_gate_ = register_module("output_gate", make_projection(ctx.d_model, H * value_dim));
  norm_weight_ = register_parameter("norm_weight", torch::ones({value_dim}));
  norm_eps_ = ctx.norm_eps;
  torch::NoGradGuard no_grad;
  // Zero bias as flash-linear-attention: alpha starts near sigmoid(0)^(1/16) = 0.958.
  gate_up_->weight.normal_(0.0, 0.02);
  gate_up_->bias.zero_();
}

namespace {
const config::Schema& gla_schema() {
  const GlaLayerOptions d;
  static const config::Schema schema(
      "model.mixers.gla", "Gated linear attention (docs/mixers.md).",
      {heads_key(),
       config::real_key("expand_k", d.expand_k, 1e-6, 64.0, "key width H * d_k = expand_k * d_model"),
       config::real_key("expand_v", d.expand_v, 1e-6, 64.0, "value width H * d_v = expand_v * d_model"),
       config::integer_key("gate_rank", d.gate_rank, 1, 4096, "rank of the decay projection"),
       config::real_key("gate_normalizer", d.gate_normalizer, 1e-6, 1e6, "log decay = logsigmoid(.) / gate_normalizer"),
       config::integer_key("chunk", d.chunk, 1, 4096, "tokens per chunk of the training form (<= 16 or a multiple of 16)")});
  return schema;
}
}  // namespace

std::shared_ptr<MixerImpl> GlaLayer::from_config(config::Section& params, const MixerContext& ctx) {
  const config::Schema& keys = gla_schema();
  GlaLayerOptions o;
  o.heads = params.integer(keys["heads"], ctx.n_heads);
  o.expand_k = params.real(keys["expand_k"]);
  o.expand_v = params.real(keys["expand_v"]);
  o.gate_rank = params.integer(keys["gate_rank"]);
  o.gate_normalizer = params.real(keys["gate_normalizer"]);
  o.chunk = params.integer(keys["chunk"]);
  if (auto problem = ops::gla_chunk_problem(o.chunk); !problem.empty()) params.fail("chunk", problem);
  const int64_t key_dim = per_head_width(params, "expand_k", o.expand_k, ctx.d_model, o.heads);
  const int64_t value_dim = per_head_width(params, "expand_v", o.expand_v, ctx.d_model, o.heads);
  return std::make_shared<GlaLayer>(ctx, o, key_dim, value_dim);
}

torch::Tensor GlaLayer::log_decay(const torch::Tensor& x) {
  return torch::log_sigmoid(project(gate_up_, project(gate_down_, x))) / options_.gate_normalizer;
}

torch::Tensor GlaLayer::output(const torch::Tensor& o, const torch::Tensor& x) {
  auto gated = merge_heads(rms_norm(o, norm_weight_, norm_eps_)) * torch::silu(project(output_gate_, x));
  return project(o_proj_, gated);
}

torch::Tensor GlaLayer::forward(const torch::Tensor& x) {
  const int64_t H = options_.heads;
  auto q = split_heads(project(q_proj_, x), H);
  auto k = split_heads(project(k_proj_, x), H);
  auto v = split_heads(project(v_proj_, x), H);
  auto g = split_heads(log_decay(x), H);
  ops::GlaOptions opt{options_.chunk, 0.0, ops::gla_subchunk(options_.chunk)};
  return output(ops::gated_linear_attention(q, k, v, g, opt), x);
}

MixerState GlaLayer::initial_state(int64_t batch, const torch::TensorOptions& options) const {
  MixerState state;
  state.tensors["S"] = ops::gla_initial_state(batch, options_.heads, key_dim_, value_dim_, options).state;
  return state;
}

torch::Tensor GlaLayer::step(const torch::Tensor& x, MixerState& state) {
  const int64_t H = options_.heads;
  auto q = split_heads(project(q_proj_, x), H);  // (B, H, d_k)
  auto k = split_heads(project(k_proj_, x), H);
  auto v = split_heads(project(v_proj_, x), H);
  auto g = split_heads(log_decay(x), H);
  ops::GlaState s{state.tensors.at("S"), state.position};
  auto o = ops::gla_decode_step(q, k, v, g, s, ops::GlaOptions{options_.chunk, 0.0, ops::gla_subchunk(options_.chunk)});
  state.tensors["S"] = s.state;
  state.position += 1;
  return output(o, x);
}

int64_t GlaLayer::state_numel(int64_t /*context*/) const { return options_.heads * key_dim_ * value_dim_; }

std::string GlaLayer::describe() const {
  return "gla(heads=" + std::to_string(options_.heads) + ", d_k=" + std::to_string(key_dim_) +
         ", d_v=" + std::to_string(value_dim_) + ", gate_rank=" + std::to_string(options_.gate_rank) +
         ", chunk=" + std::to_string(options_.chunk) + ")";
}

BLA_REGISTER_MIXER({"gla", "gated linear attention: low-rank data-dependent decay per key channel, output gate",
                    "H*d_k*d_v", &gla_schema, &GlaLayer::from_config});

}  // namespace bla::mixers
