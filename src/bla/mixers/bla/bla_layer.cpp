#include "bla/mixers/bla/bla_layer.h"

#include "bla/config/section.h"

#include <torch/torch.h>

#include <limits>
#include <stdexcept>
#include <string>

namespace bla::mixers {

namespace {

// Upper bounds: the operator tables hold (C+1)*N*N + C*C*N float64 numbers
// (ops/bla/operators.cpp); kMaxTableNumbers keeps them under 512 MiB.
constexpr int64_t kMaxWindow = int64_t{1} << 30;
constexpr int64_t kMaxSlots = 4096;
constexpr int64_t kMaxChunk = 4096;
constexpr int64_t kMaxTableNumbers = int64_t{1} << 26;

const config::Schema& bla_schema() {
  static const config::Schema schema(
      "model.mixers.bla", "Blurry Window Attention (docs/bla.md); slots == window is sliding-window attention.",
      config::concat(
          {heads_key(), head_dim_key(),
           config::computed_default(config::integer_key("window", 0, 1, kMaxWindow, "tokens the slots cover (>= slots)"),
                                    "required (or `windows`)"),
           config::computed_default(
               config::integer_list_key("windows", {}, 1, kMaxWindow,
                                        "one window per head group (heads split evenly), instead of `window`"),
               "none"),
           config::required_integer_key("slots", 1, kMaxSlots, "memory slots N per head (1 <= slots <= window)"),
           config::integer_key("chunk", 64, 1, kMaxChunk, "tokens per chunk of the chunked form and the kernels")},
          rope_keys(false)));
  return schema;
}

std::string join(const std::vector<int64_t>& values) {
  std::string out;
  for (int64_t v : values) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

// The decode state's tensor names for head group g.
std::string keys_name(size_t group) { return "keys." + std::to_string(group); }
std::string values_name(size_t group) { return "values." + std::to_string(group); }

// BlaOptions::validate names the bad option first ("bla: slots (0) must be
// ..."); re-raise its message as a config error on that key, so the user
// sees file, line and key. A window from a `windows` list is reported on
// `windows`, with the entry.
[[noreturn]] void fail_on_option(config::Section& params, const std::invalid_argument& error, bool listed,
                                 size_t group, int64_t window) {
  std::string message = error.what();
  const std::string prefix = "bla: ";
  if (message.rfind(prefix, 0) == 0) message = message.substr(prefix.size());
  std::string key = message.substr(0, message.find(' '));
  if (key != "window" && key != "slots" && key != "chunk") key = listed ? "windows" : "window";
  if (listed) {
    if (key == "window") key = "windows";
    message = "with windows[" + std::to_string(group) + "] = " + std::to_string(window) + ": " + message;
  }
  params.fail(key, message);
}

}  // namespace

BlaLayer::BlaLayer(const MixerContext& ctx, HeadLayout layout, std::vector<int64_t> windows, int64_t slots,
                   int64_t chunk, bool rope, double rope_base)
    : layout_(layout), windows_(std::move(windows)), slots_(slots), chunk_(chunk), rope_(rope), rope_base_(rope_base) {
  if (windows_.empty()) throw std::invalid_argument("bla: windows must hold at least one window");
  if (layout_.heads % static_cast<int64_t>(windows_.size()) != 0) {
    throw std::invalid_argument("bla: heads (" + std::to_string(layout_.heads) + ") must be divisible by the number of windows (" +
                                std::to_string(windows_.size()) + "); give one window per head group");
  }
  for (size_t g = 0; g < windows_.size(); ++g) options_for(g).validate();
  // Same modules, order and initialisation as AttentionLayer: with slots ==
  // window and rope off, a BLA model is the SWA model (docs/bla.md "N = W").
  q_proj_ = register_module("q_proj", make_projection(ctx.d_model, layout.inner()));
  k_proj_ = register_module("k_proj", make_projection(ctx.d_model, layout.inner()));
  v_proj_ = register_module("v_proj", make_projection(ctx.d_model, layout.value_inner()));
  o_proj_ = register_module("o_proj", make_projection(layout.value_inner(), ctx.d_model));
}

std::shared_ptr<MixerImpl> BlaLayer::from_config(config::Section& params, const MixerContext& ctx) {
  const config::Schema& keys = bla_schema();
  HeadLayout layout = read_head_layout(params, ctx);

  const bool has_window = params.has("window"), has_windows = params.has("windows");
  if (has_window && has_windows) {
    params.fail("windows", "window and windows are mutually exclusive: set window for one window in every head, or "
                           "windows: [...] for one window per head group, not both");
  }
  if (!has_window && !has_windows) {
    params.fail("window", "is required: the number of tokens the slots cover (an integer >= slots), or set "
                          "windows: [...] for one window per head group");
  }
  std::vector<int64_t> windows;
  if (has_window) {
    windows.push_back(params.integer(keys["window"]));
  } else {
    windows = params.integer_list(keys["windows"]);
    if (windows.empty()) params.fail("windows", "must list at least one window, e.g. windows: [64, 256, 1024]");
    if (layout.heads % static_cast<int64_t>(windows.size()) != 0) {
      params.fail("windows", "has " + std::to_string(windows.size()) + " entries, which does not divide heads (" +
                                 std::to_string(layout.heads) + "); give one window per head group");
    }
  }
  if (!params.has("slots")) {
    params.fail("slots", "is required: the number of memory slots per head (1 <= slots <= window; slots == window is "
                         "sliding-window attention)");
  }
  const int64_t slots = params.integer(keys["slots"]);
  const int64_t chunk = params.integer(keys["chunk"]);
  if ((chunk + 1) * slots * slots + chunk * chunk * slots > kMaxTableNumbers) {
    params.fail("chunk", "chunk " + std::to_string(chunk) + " with slots " + std::to_string(slots) +
                             " needs operator tables of (chunk+1)*slots^2 + chunk^2*slots > " +
                             std::to_string(kMaxTableNumbers) + " numbers; lower chunk (64 is the usual)");
  }
  for (size_t g = 0; g < windows.size(); ++g) {
    try {
      ops::BlaOptions{windows[g], slots, chunk, 0.0}.validate();
    } catch (const std::invalid_argument& error) {
      fail_on_option(params, error, has_windows, g, windows[g]);
    }
  }
  const bool rope = params.boolean(keys["rope"]);
  const double rope_base = params.real(keys["rope_base"]);
  if (rope && layout.head_dim % 2 != 0) params.fail("rope", "rotary embedding needs an even head_dim; set rope: false");
  return std::make_shared<BlaLayer>(ctx, layout, windows, slots, chunk, rope, rope_base);
}

ops::BlaOptions BlaLayer::options_for(size_t group) const {
  return ops::BlaOptions{windows_[group], slots_, chunk_, 0.0};  // scale 1/sqrt(head_dim)
}

torch::Tensor BlaLayer::forward(const torch::Tensor& x) {
  auto [q, k, v] = project_heads(x, q_proj_, k_proj_, v_proj_, layout_.heads, rope_, rope_base_, 0);
  if (windows_.size() == 1) return project(o_proj_, merge_heads(ops::blurry_window_attention(q, k, v, options_for(0))));
  const int64_t per_group = heads_per_group();
  std::vector<torch::Tensor> outputs;
  for (size_t g = 0; g < windows_.size(); ++g) {
    const int64_t first = static_cast<int64_t>(g) * per_group;
    const auto heads = [&](const torch::Tensor& t) { return t.slice(2, first, first + per_group); };
    outputs.push_back(ops::blurry_window_attention(heads(q), heads(k), heads(v), options_for(g)));
  }
  return project(o_proj_, merge_heads(torch::cat(outputs, 2)));
}

MixerState BlaLayer::initial_state(int64_t batch, const torch::TensorOptions& options) const {
  MixerState state;
  for (size_t g = 0; g < windows_.size(); ++g) {
    auto empty = ops::bla_initial_state(batch, heads_per_group(), layout_.head_dim, layout_.value_dim, options_for(g),
                                        options);
    state.tensors[keys_name(g)] = empty.keys;
    state.tensors[values_name(g)] = empty.values;
  }
  return state;
}

torch::Tensor BlaLayer::step(const torch::Tensor& x, MixerState& state) {
  auto x1 = x.unsqueeze(1);  // (B, 1, d_model)
  auto [q, k, v] = project_heads(x1, q_proj_, k_proj_, v_proj_, layout_.heads, rope_, rope_base_, state.position);
  q = q.select(1, 0);  // (B, H, D)
  k = k.select(1, 0);
  v = v.select(1, 0);
  const int64_t per_group = heads_per_group();
  std::vector<torch::Tensor> outputs;
  for (size_t g = 0; g < windows_.size(); ++g) {
    const int64_t first = static_cast<int64_t>(g) * per_group;
    const auto heads = [&](const torch::Tensor& t) { return t.slice(1, first, first + per_group); };
    ops::BlaState slots{state.tensors.at(keys_name(g)), state.tensors.at(values_name(g)), state.position};
    outputs.push_back(ops::bla_decode_step(heads(q), heads(k), heads(v), slots, options_for(g)));
    state.tensors[keys_name(g)] = slots.keys;
    state.tensors[values_name(g)] = slots.values;
  }
  state.position += 1;
  return project(o_proj_, merge_heads(torch::cat(outputs, 1)));
}

int64_t BlaLayer::state_numel(int64_t /*context*/) const {
  // N slots of keys and values per head, for any context (docs/bla.md "State size").
  return layout_.heads * slots_ * (layout_.head_dim + layout_.value_dim);
}

std::string BlaLayer::describe() const {
  std::string out = windows_.size() == 1 ? "bla(window=" + std::to_string(windows_[0])
                                         : "bla(windows=[" + join(windows_) + "]";
  return out + ", slots=" + std::to_string(slots_) + ", chunk=" + std::to_string(chunk_) +
         ", heads=" + std::to_string(layout_.heads) + ", head_dim=" + std::to_string(layout_.head_dim) +
         ", rope=" + (rope_ ? "on" : "off") + ")";
}

BLA_REGISTER_MIXER({"bla", "blurry window attention: softmax over N slots holding a blurred copy of the last W tokens",
                    "2*N*d_model", &bla_schema,
                    [](config::Section& p, const MixerContext& c) { return BlaLayer::from_config(p, c); }});

}  // namespace bla::mixers
