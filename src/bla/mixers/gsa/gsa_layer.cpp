#include "bla/mixers/gsa/gsa_layer.h"

#include "bla/config/section.h"
#include "bla/mixers/common/norm.h"
#include "bla/ops/gla/gla.h"
#include "bla/ops/gsa/gsa.h"

#include <torch/torch.h>

namespace bla::mixers {
namespace {

constexpr double kScale = 1.0;  // docs/mixers.md: the swish feature map already bounds q and k

}  // namespace

GsaLayer::GsaLayer(const MixerContext& ctx, const GsaLayerOptions& options, int64_t head_dim)
    : options_(options), head_dim_(head_dim) {
  const int64_t H = options.heads;
  q_proj_ = register_module("q_proj", make_projection(ctx.d_model, H * head_dim));
  k_proj_ = register_module("k_proj", make_projection(ctx.d_model, H * head_dim));
  v_proj_ = register_module("v_proj", make_projection(ctx.d_model, H * head_dim));
  o_proj_ = register_module("o_proj", make_projection(H * head_dim, ctx.d_model));
  forget_proj_ = register_module("forget_proj", make_projection(ctx.d_model, H * options.slots));
  norm_weight_ = register_parameter("norm_weight", torch::ones({head_dim}));
  norm_eps_ = ctx.norm_eps;
}

namespace {
const config::Schema& gsa_schema() {
  const GsaLayerOptions d;
  static const config::Schema schema(
      "model.mixers.gsa", "Gated slot attention (docs/mixers.md).",
      {heads_key(), config::integer_key("slots", d.slots, 1, 4096, "memory slots m per head"),
       config::real_key("gate_normalizer", d.gate_normalizer, 1e-6, 1e6, "log forget gate = logsigmoid(.) / gate_normalizer"),
       config::integer_key("chunk", d.chunk, 1, 4096, "tokens per chunk of the training form (<= 16 or a multiple of 16)")});
  return schema;
}
}  // namespace

std::shared_ptr<MixerImpl> GsaLayer::from_config(config::Section& params, const MixerContext& ctx) {
  const config::Schema& keys = gsa_schema();
  GsaLayerOptions o;
  o.heads = params.integer(keys["heads"], ctx.n_heads);
  o.slots = params.integer(keys["slots"]);
  o.gate_normalizer = params.real(keys["gate_normalizer"]);
  o.chunk = params.integer(keys["chunk"]);
  if (auto problem = ops::gla_chunk_problem(o.chunk); !problem.empty()) params.fail("chunk", problem);
  if (ctx.d_model % o.heads != 0) {
    params.fail("heads", "d_model (" + std::to_string(ctx.d_model) + ") is not divisible by heads (" +
                             std::to_string(o.heads) + "); pick a divisor of d_model");
  }
  return std::make_shared<GsaLayer>(ctx, o, ctx.d_model / o.heads);
}

torch::Tensor GsaLayer::log_forget(const torch::Tensor& x) {
  return torch::log_sigmoid(project(forget_proj_, x)) / options_.gate_normalizer;
}

torch::Tensor GsaLayer::output(const torch::Tensor& o) {
  return project(o_proj_, merge_heads(rms_norm(torch::silu(o), norm_weight_, norm_eps_)));
}

torch::Tensor GsaLayer::forward(const torch::Tensor& x) {
  const int64_t H = options_.heads;
  auto q = torch::silu(split_heads(project(q_proj_, x), H));
  auto k = torch::silu(split_heads(project(k_proj_, x), H));
  auto v = split_heads(project(v_proj_, x), H);
  auto f = split_heads(log_forget(x), H);  // (B, T, H, m)
  ops::GsaOptions opt{options_.chunk, kScale, ops::gla_subchunk(options_.chunk)};
  return output(ops::gated_slot_attention(q, k, v, f, opt));
}

MixerState GsaLayer::initial_state(int64_t batch, const torch::TensorOptions& options) const {
  auto s = ops::gsa_initial_state(batch, options_.heads, options_.slots, head_dim_, head_dim_, options);
  MixerState state;
  state.tensors["slot_keys"] = s.keys;
  state.tensors["slot_values"] = s.values;
  return state;
}

torch::Tensor GsaLayer::step(const torch::Tensor& x, MixerState& state) {
  const int64_t H = options_.heads;
  auto q = torch::silu(split_heads(project(q_proj_, x), H));  // (B, H, d_k)
  auto k = torch::silu(split_heads(project(k_proj_, x), H));
  auto v = split_heads(project(v_proj_, x), H);
  auto f = split_heads(log_forget(x), H);  // (B, H, m)
  ops::GsaState s{state.tensors.at("slot_keys"), state.tensors.at("slot_values"), state.position};
  auto o = ops::gsa_decode_step(q, k, v, f, s, ops::GsaOptions{options_.chunk, kScale, ops::gla_subchunk(options_.chunk)});
  state.tensors["slot_keys"] = s.keys;
  state.tensors["slot_values"] = s.values;
  state.position += 1;
  return output(o);
}

int64_t GsaLayer::state_numel(int64_t /*context*/) const {
  return options_.heads * options_.slots * (head_dim_ + head_dim_);
}

std::string GsaLayer::describe() const {
  return "gsa(heads=" + std::to_string(options_.heads) + ", slots=" + std::to_string(options_.slots) +
         ", head_dim=" + std::to_string(head_dim_) + ", chunk=" + std::to_string(options_.chunk) + ")";
}

BLA_REGISTER_MIXER({"gsa", "gated slot attention: m slots with a data-dependent forget gate, softmax over slots",
                    "H*m*(d_k+d_v) = 2*m*d_model", &gsa_schema, &GsaLayer::from_config});

}  // namespace bla::mixers
