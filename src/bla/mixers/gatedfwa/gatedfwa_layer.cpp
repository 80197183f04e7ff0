#include "bla/mixers/gatedfwa/gatedfwa_layer.h"

#include "bla/config/section.h"
#include "bla/ops/gatedfwa/gatedfwa.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace bla::mixers {
namespace {

std::string number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

ops::GatedWindowOptions window_options(const GatedFwaOptions& o) { return {o.window, 0.0, o.block}; }

}  // namespace

GatedFwaLayer::GatedFwaLayer(const MixerContext& ctx, HeadLayout layout, const GatedFwaOptions& options)
    : layout_(layout), options_(options) {
  q_proj_ = register_module("q_proj", make_projection(ctx.d_model, layout.inner()));
  k_proj_ = register_module("k_proj", make_projection(ctx.d_model, layout.inner()));
  v_proj_ = register_module("v_proj", make_projection(ctx.d_model, layout.value_inner()));
  o_proj_ = register_module("o_proj", make_projection(layout.value_inner(), ctx.d_model));
  gate_proj_ = register_module("gate_proj", torch::nn::Linear(torch::nn::LinearOptions(ctx.d_model, layout.heads)));

  torch::NoGradGuard no_grad;
  gate_proj_->weight.normal_(0.0, 0.02);
  // The bias sets the per-token decay d = -g at zero input: -logsigmoid(b) = d
  // <=> b = -log(expm1(d)). Decays d_h log-spaced from gate_init_min to gate_init_max over the heads
  // (their geometric mean for one head), so heads start with different
  // effective windows and a zero gate input keeps the window nearly flat.
  const int64_t H = layout.heads;
  auto position = H == 1 ? torch::full({1}, 0.5, torch::kDouble) : torch::linspace(0.0, 1.0, H, torch::kDouble);
  auto decay = (std::log(options.gate_init_min) +
                position * (std::log(options.gate_init_max) - std::log(options.gate_init_min)))
                   .exp();
  gate_proj_->bias.copy_(-torch::log(torch::expm1(decay)));
}

namespace {
const config::Schema& gatedfwa_schema() {
  const GatedFwaOptions d;
  static const config::Schema schema(
      "model.mixers.gatedfwa", "Sliding-window attention with a cumulative per-head log gate (docs/mixers.md).",
      config::concat(
          {heads_key(), head_dim_key(),
           config::required_integer_key("window", 1, int64_t{1} << 40, "keys each query sees")},
          config::concat(rope_keys(d.rope),
                         {config::integer_key("block", d.block, 1, 4096, "queries per block of the training form"),
                          config::real_key("gate_init_min", d.gate_init_min, 1e-8, 100.0,
                                           "initial per-token decay of head 0 (log-spaced to gate_init_max)"),
                          config::real_key("gate_init_max", d.gate_init_max, 1e-8, 100.0,
                                           "initial per-token decay of the last head")})));
  return schema;
}
}  // namespace

std::shared_ptr<MixerImpl> GatedFwaLayer::from_config(config::Section& params, const MixerContext& ctx) {
  const config::Schema& keys = gatedfwa_schema();
  HeadLayout layout = read_head_layout(params, ctx);
  GatedFwaOptions o;
  o.window = params.integer(keys["window"]);
  o.rope = params.boolean(keys["rope"]);
  o.rope_base = params.real(keys["rope_base"]);
  o.block = params.integer(keys["block"]);
  o.gate_init_min = params.real(keys["gate_init_min"]);
  o.gate_init_max = params.real(keys["gate_init_max"]);
  if (o.rope && layout.head_dim % 2 != 0) params.fail("rope", "rotary embedding needs an even head_dim; set rope: false");
  if (o.gate_init_min > o.gate_init_max) {
    params.fail("gate_init_min", "gate_init_min (" + number(o.gate_init_min) + ") must be <= gate_init_max (" +
                                     number(o.gate_init_max) + "); lower gate_init_min or raise gate_init_max");
  }
  return std::make_shared<GatedFwaLayer>(ctx, layout, o);
}

namespace {
// g = logsigmoid(logits), in float32 at least: under bf16 autocast a bf16
// gate would carry ~0.4 % error into every term of the running sums (the op
// accumulates in float32).
torch::Tensor log_gate_of(torch::Tensor logits) {
  if (logits.scalar_type() == torch::kHalf || logits.scalar_type() == torch::kBFloat16) logits = logits.to(torch::kFloat);
  return torch::log_sigmoid(logits);
}
}  // namespace

torch::Tensor GatedFwaLayer::log_gate(const torch::Tensor& x) { return log_gate_of(project(gate_proj_, x)); }

torch::Tensor GatedFwaLayer::forward(const torch::Tensor& x) {
  // q, k, v and the gate's logits from one product: x is read once (and the
  // norm before the layer can write it in bf16, reads_input_in_one_product).
  auto [p, logits] = project_heads_and(x, q_proj_, k_proj_, v_proj_, gate_proj_, layout_.heads, options_.rope,
                                       options_.rope_base, 0);
  auto o = ops::gated_window_attention(p.q, p.k, p.v, log_gate_of(logits), window_options(options_));
  return project(o_proj_, merge_heads(o));
}

MixerState GatedFwaLayer::initial_state(int64_t batch, const torch::TensorOptions& options) const {
  auto s = ops::gated_window_initial_state(batch, layout_.heads, layout_.head_dim, layout_.value_dim,
                                           window_options(options_), options);
  MixerState state;
  state.tensors["keys"] = s.keys;
  state.tensors["values"] = s.values;
  state.tensors["gate_sums"] = s.gate_sums;
  return state;
}

torch::Tensor GatedFwaLayer::step(const torch::Tensor& x, MixerState& state) {
  auto x1 = x.unsqueeze(1);  // (B, 1, d_model)
  auto [p, logits] = project_heads_and(x1, q_proj_, k_proj_, v_proj_, gate_proj_, layout_.heads, options_.rope,
                                       options_.rope_base, state.position);
  ops::GatedWindowState rings{state.tensors.at("keys"), state.tensors.at("values"), state.tensors.at("gate_sums"),
                              state.position};
  auto o = ops::gated_window_decode_step(p.q.squeeze(1), p.k.squeeze(1), p.v.squeeze(1), log_gate_of(logits.squeeze(1)),
                                         window_options(options_), rings);
  state.tensors["keys"] = rings.keys;
  state.tensors["values"] = rings.values;
  state.tensors["gate_sums"] = rings.gate_sums;
  state.position = rings.position;
  return project(o_proj_, merge_heads(o));
}

int64_t GatedFwaLayer::state_numel(int64_t context) const {
  const int64_t kept = std::min(context, options_.window);  // as SWA: the ring holds at most W tokens
  return kept * layout_.heads * (layout_.head_dim + layout_.value_dim + 1);
}

std::string GatedFwaLayer::describe() const {
  return "gatedfwa(window=" + std::to_string(options_.window) + ", heads=" + std::to_string(layout_.heads) +
         ", head_dim=" + std::to_string(layout_.head_dim) + ", rope=" + (options_.rope ? "on" : "off") + ")";
}

BLA_REGISTER_MIXER({"gatedfwa", "sliding-window attention with a cumulative per-head log gate added to the logits",
                    "2*W*d_model + W*H", &gatedfwa_schema, &GatedFwaLayer::from_config});

}  // namespace bla::mixers
