#include "bla/mixers/attention/attention_layer.h"

#include "bla/config/section.h"
#include "bla/ops/attention/attention.h"

#include <torch/torch.h>

namespace bla::mixers {

AttentionLayer::AttentionLayer(const MixerContext& ctx, HeadLayout layout, int64_t window, bool rope, double rope_base)
    : layout_(layout), window_(window), rope_(rope), rope_base_(rope_base) {
  q_proj_ = register_module("q_proj", make_projection(ctx.d_model, layout.inner()));
  k_proj_ = register_module("k_proj", make_projection(ctx.d_model, layout.inner()));
  v_proj_ = register_module("v_proj", make_projection(ctx.d_model, layout.value_inner()));
  o_proj_ = register_module("o_proj", make_projection(layout.value_inner(), ctx.d_model));
}

namespace {
const config::Schema& attention_schema() {
  static const config::Schema schema("model.mixers.attention", "Causal softmax attention (docs/mixers.md).",
                                     config::concat({heads_key(), head_dim_key()}, rope_keys(true)));
  return schema;
}

const config::Schema& swa_schema() {
  static const config::Schema schema(
      "model.mixers.swa", "Sliding-window softmax attention (docs/mixers.md).",
      config::concat({heads_key(), head_dim_key(),
                      config::required_integer_key("window", 1, int64_t{1} << 40, "keys each query sees")},
                     rope_keys(true)));
  return schema;
}
}  // namespace

std::shared_ptr<MixerImpl> AttentionLayer::from_config(config::Section& params, const MixerContext& ctx, bool windowed) {
  const config::Schema& keys = windowed ? swa_schema() : attention_schema();
  HeadLayout layout = read_head_layout(params, ctx);
  int64_t window = windowed ? params.integer(keys["window"]) : 0;
  bool rope = params.boolean(keys["rope"]);
  double rope_base = params.real(keys["rope_base"]);
  if (rope && layout.head_dim % 2 != 0) params.fail("rope", "rotary embedding needs an even head_dim; set rope: false");
  return std::make_shared<AttentionLayer>(ctx, layout, window, rope, rope_base);
}

torch::Tensor AttentionLayer::forward(const torch::Tensor& x) {
  auto [q, k, v] = project_heads(x, q_proj_, k_proj_, v_proj_, layout_.heads, rope_, rope_base_, 0);
  auto o = ops::sliding_window_attention(q, k, v, ops::WindowOptions{window_, 0.0});
  return project(o_proj_, merge_heads(o));
}

MixerState AttentionLayer::initial_state(int64_t batch, const torch::TensorOptions& options) const {
  MixerState state;
  state.tensors["keys"] = torch::zeros({batch, 0, layout_.heads, layout_.head_dim}, options);
  state.tensors["values"] = torch::zeros({batch, 0, layout_.heads, layout_.value_dim}, options);
  return state;
}

torch::Tensor AttentionLayer::step(const torch::Tensor& x, MixerState& state) {
  auto x1 = x.unsqueeze(1);  // (B, 1, d_model)
  auto [q, k, v] = project_heads(x1, q_proj_, k_proj_, v_proj_, layout_.heads, rope_, rope_base_, state.position);
  auto keys = torch::cat({state.tensors["keys"], k}, 1);
  auto values = torch::cat({state.tensors["values"], v}, 1);
  if (window_ > 0 && keys.size(1) > window_) {  // SWA keeps the last `window` tokens only
    keys = keys.slice(1, keys.size(1) - window_);
    values = values.slice(1, values.size(1) - window_);
  }
  state.tensors["keys"] = keys;
  state.tensors["values"] = values;
  state.position += 1;
  const double scale = 1.0 / std::sqrt(static_cast<double>(layout_.head_dim));
  auto logits = (keys * q).sum(-1) * scale;                   // (B, S, H)
  auto weights = stable_softmax(logits, 1);
  auto o = (weights.unsqueeze(-1) * values).sum(1);           // (B, H, Dv)
  return project(o_proj_, merge_heads(o));
}

int64_t AttentionLayer::state_numel(int64_t context) const {
  int64_t kept = window_ > 0 ? std::min(context, window_) : context;
  return kept * layout_.heads * (layout_.head_dim + layout_.value_dim);
}

std::string AttentionLayer::describe() const {
  std::string out = window_ > 0 ? "swa(window=" + std::to_string(window_) + ", " : "attention(";
  return out + "heads=" + std::to_string(layout_.heads) + ", head_dim=" + std::to_string(layout_.head_dim) +
         ", rope=" + (rope_ ? "on" : "off") + ")";
}

BLA_REGISTER_MIXER({"attention", "causal softmax attention with rotary embedding", "2*T*d_model (grows)",
                    &attention_schema, [](config::Section& p, const MixerContext& c) { return AttentionLayer::from_config(p, c, false); }});
BLA_REGISTER_MIXER({"swa", "sliding-window softmax attention over the last `window` tokens", "2*W*d_model",
                    &swa_schema, [](config::Section& p, const MixerContext& c) { return AttentionLayer::from_config(p, c, true); }});

}  // namespace bla::mixers
