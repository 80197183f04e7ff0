// The BLA mixer layer (src/bla/mixers/bla): slots == window makes it the SWA
// layer, for one forward and for a whole training run; per-head windows;
// decoding with `windows`; config errors that name the key.
#include "bla/config/config.h"
#include "bla/mixers/bla/bla_layer.h"
#include "bla/mixers/mixer.h"
#include "bla/ops/bla/bla.h"
#include "bla/train/trainer.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>
#include "support/tensor_checks.h"

using bla::testing::max_abs_diff;

namespace {

using bla::mixers::MixerImpl;
using bla::testing::TempDir;
using bla::testing::tiny_mqar_config;

// A mixer of `type` (d_model 32, 2 heads by default) built from the model
// section `mixers: {type: params}` as the trainer would build it.
std::shared_ptr<MixerImpl> make_mixer(const std::string& type, const std::string& params,
                                      const std::vector<std::string>& overrides = {}) {
  auto config = bla::config::parse_config(tiny_mqar_config(type, "  mixers: {" + type + ": " + params + "}\n"),
                                          "layer.yaml", overrides);
  bla::mixers::MixerContext ctx{config.model.d_model, config.model.heads, 0, 64};
  auto& spec = config.model.mixers.at(0);
  auto mixer = bla::mixers::MixerRegistry::instance().get(spec.type, *spec.params, "type").make(*spec.params, ctx);
  spec.params->finish();
  return mixer;
}

// The ConfigError message that building a bla mixer with `params` raises ("" if none).
std::string config_error(const std::string& params, const std::vector<std::string>& overrides = {}) {
  try {
    make_mixer("bla", params, overrides);
  } catch (const bla::config::ConfigError& e) {
    return e.what();
  }
  return "";
}

// Copies every parameter of `from` into the same-named parameter of `to`.
void copy_parameters(MixerImpl& from, MixerImpl& to) {
  torch::NoGradGuard no_grad;
  auto source = from.named_parameters();
  auto target = to.named_parameters();
  ASSERT_EQ(source.size(), target.size());
  for (auto& p : target) {
    ASSERT_TRUE(source.contains(p.key())) << p.key();
    p.value().copy_(source[p.key()]);
  }
}

// ---------------------------------------------------------------------------
// slots == window is SWA(window)

TEST(BlaLayer, SlotsEqualWindowMatchesTheSwaLayer) {
  for (const std::string rope : {"false", "true"}) {
    for (int64_t window : {1, 5, 8}) {
      SCOPED_TRACE("window " + std::to_string(window) + ", rope " + rope);
      torch::manual_seed(window);
      const std::string w = std::to_string(window);
      auto swa = make_mixer("swa", "{window: " + w + ", rope: " + rope + "}");
      auto bla = make_mixer("bla", "{window: " + w + ", slots: " + w + ", chunk: 3, rope: " + rope + "}");
      copy_parameters(*swa, *bla);
      swa->to(torch::kDouble);
      bla->to(torch::kDouble);
      auto x = torch::randn({2, 13, 32}, torch::kDouble);  // T > window and T not a multiple of chunk
      auto expected = swa->forward(x);
      EXPECT_LT(max_abs_diff(bla->forward(x), expected), 1e-12);
      // And token by token, each from its own decode state.
      auto swa_state = swa->initial_state(2, x.options());
      auto bla_state = bla->initial_state(2, x.options());
      for (int64_t t = 0; t < x.size(1); ++t) {
        auto y_swa = swa->step(x.select(1, t), swa_state);
        auto y_bla = bla->step(x.select(1, t), bla_state);
        EXPECT_LT(max_abs_diff(y_bla, y_swa), 1e-12) << "t=" << t;
      }
      // Same state size as SWA once the window is full: 2 * W * d_model.
      EXPECT_EQ(bla->state_numel(100), swa->state_numel(100));
    }
  }
}

TEST(BlaLayer, SlotsEqualWindowMatchesTheSwaLayerInFloat32) {
  torch::manual_seed(7);
  auto swa = make_mixer("swa", "{window: 6, rope: false}");
  auto bla = make_mixer("bla", "{window: 6, slots: 6, chunk: 4}");
  copy_parameters(*swa, *bla);
  auto x = torch::randn({2, 17, 32});
  auto expected = swa->forward(x);
  EXPECT_LT(max_abs_diff(bla->forward(x), expected), 1e-5 * expected.abs().max().item<double>());
}

// metrics.jsonl of a run, one JSON object per line.
std::vector<nlohmann::json> metric_lines(const std::string& dir) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

nlohmann::json train_quietly(const std::string& config_file, const std::string& dir,
                             std::vector<std::string> overrides = {}) {
  // Shortened to a second or so; everything else as in the file. On the CPU
  // in float32 (on a GPU, bf16 autocast separates the two at about 1e-4).
  for (const char* o : {"train.steps=16", "train.log_every=1", "train.eval_every=8", "train.eval_examples=32",
                        "run.threads=1", "run.device=cpu"})
    overrides.push_back(o);
  auto config =
      bla::config::load_config(std::string(BLA_SOURCE_DIR) + "/configs/equivalence/" + config_file, overrides);
  bla::train::RunOptions options;
  options.run_dir = dir;
  options.quiet = true;
  return bla::train::train(config, options);
}

// Largest relative loss difference between two runs' logged steps (train and
// test lines), checking that both logged the same steps.
double largest_relative_loss_difference(const std::string& dir_a, const std::string& dir_b) {
  auto a = metric_lines(dir_a), b = metric_lines(dir_b);
  EXPECT_EQ(a.size(), b.size());
  double largest = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    EXPECT_EQ(a[i]["split"], b[i]["split"]);
    const double la = a[i]["loss"].get<double>(), lb = b[i]["loss"].get<double>();
    largest = std::max(largest, std::abs(la - lb) / std::abs(lb));
  }
  return largest;
}

TEST(BlaLayer, TrainingWithSlotsEqualWindowGivesTheSwaLosses) {
  TempDir tmp;
  auto bla_summary = train_quietly("bla_slots_eq_window.yaml", tmp / "bla");
  auto swa_summary = train_quietly("swa_same_window.yaml", tmp / "swa");
  // The two runs really used the two mixers.
  EXPECT_EQ(bla_summary["state"]["per_layer"][0]["mixer"].get<std::string>().rfind("bla(window=12, slots=12", 0), 0u);
  EXPECT_EQ(swa_summary["state"]["per_layer"][0]["mixer"].get<std::string>().rfind("swa(window=12", 0), 0u);

  auto bla_lines = metric_lines(tmp / "bla"), swa_lines = metric_lines(tmp / "swa");
  ASSERT_EQ(bla_lines.size(), swa_lines.size());
  int64_t train_lines = 0, test_lines = 0;
  std::vector<double> losses;
  for (size_t i = 0; i < bla_lines.size(); ++i) {
    const auto& b = bla_lines[i];
    const auto& s = swa_lines[i];
    ASSERT_EQ(b["step"], s["step"]);
    ASSERT_EQ(b["split"], s["split"]);
    const double bla_loss = b["loss"].get<double>(), swa_loss = s["loss"].get<double>();
    EXPECT_LE(std::abs(bla_loss - swa_loss), 1e-5 * std::abs(swa_loss))
        << b["split"] << " step " << b["step"] << ": bla " << bla_loss << ", swa " << swa_loss;
    if (b["split"] == "train") {
      ++train_lines;
      losses.push_back(bla_loss);
    } else {
      ++test_lines;
    }
  }
  EXPECT_EQ(train_lines, 16);
  EXPECT_EQ(test_lines, 2);  // step 8 and the end
  // The runs trained (the comparison is not between two constant losses).
  EXPECT_GT(losses.front() - losses.back(), 0.1);

  // The tolerance tells mixers apart: one slot fewer (a blurred window) moves
  // the losses by far more than 1e-5 (measured: 1e-4 to 5e-3).
  train_quietly("bla_slots_eq_window.yaml", tmp / "blurred", {"model.mixers.bla.slots=11"});
  EXPECT_GT(largest_relative_loss_difference(tmp / "blurred", tmp / "swa"), 1e-4);
  EXPECT_LT(largest_relative_loss_difference(tmp / "bla", tmp / "swa"), 1e-5);
}

// ---------------------------------------------------------------------------
// Per-head windows

// The layer's computation spelled out with the functional op, head by head.
torch::Tensor per_head_reference(MixerImpl& layer, const torch::Tensor& x, const std::vector<int64_t>& head_windows,
                                 int64_t slots) {
  auto params = layer.named_parameters();
  const int64_t heads = static_cast<int64_t>(head_windows.size());
  auto project = [&](const std::string& name, const torch::Tensor& in) {
    return torch::matmul(in, params[name + ".weight"].t());
  };
  auto q = project("q_proj", x), k = project("k_proj", x), v = project("v_proj", x);
  const int64_t d = q.size(-1) / heads;
  std::vector<torch::Tensor> outputs;
  for (int64_t h = 0; h < heads; ++h) {
    auto head = [&](const torch::Tensor& t) { return t.slice(-1, h * d, (h + 1) * d).unsqueeze(2); };  // (B, T, 1, d)
    bla::ops::BlaOptions opt{head_windows[static_cast<size_t>(h)], slots, 64, 0.0};
    outputs.push_back(bla::ops::blurry_window_attention_reference(head(q), head(k), head(v), opt).squeeze(2));
  }
  return project("o_proj", torch::cat(outputs, -1));
}

TEST(BlaLayer, EachHeadGroupUsesItsOwnWindow) {
  torch::manual_seed(3);
  auto layer = make_mixer("bla", "{heads: 4, windows: [4, 11], slots: 3, chunk: 5}");
  layer->to(torch::kDouble);
  EXPECT_EQ(layer->describe(), "bla(windows=[4, 11], slots=3, chunk=5, heads=4, head_dim=8, rope=off)");
  auto x = torch::randn({2, 19, 32}, torch::kDouble);
  auto y = layer->forward(x);
  // Heads 0, 1 see window 4; heads 2, 3 window 11.
  EXPECT_LT(max_abs_diff(y, per_head_reference(*layer, x, {4, 4, 11, 11}, 3)), 1e-10);

  // And the result is neither single-window layer.
  for (int64_t window : {4, 11}) {
    auto single = make_mixer("bla", "{heads: 4, window: " + std::to_string(window) + ", slots: 3, chunk: 5}");
    copy_parameters(*layer, *single);
    single->to(torch::kDouble);
    EXPECT_GT(max_abs_diff(single->forward(x), y), 1e-4) << "window " << window;
  }
  // Equal windows in every group are the single-window layer.
  auto same = make_mixer("bla", "{heads: 4, windows: [11, 11], slots: 3, chunk: 5}");
  auto single = make_mixer("bla", "{heads: 4, window: 11, slots: 3, chunk: 5}");
  copy_parameters(*same, *single);
  same->to(torch::kDouble);
  single->to(torch::kDouble);
  EXPECT_LT(max_abs_diff(same->forward(x), single->forward(x)), 1e-12);
}

TEST(BlaLayer, DecodingWithWindowsReproducesTheForward) {
  for (const std::string rope : {"false", "true"}) {
    SCOPED_TRACE("rope " + rope);
    torch::manual_seed(5);
    auto layer = make_mixer("bla", "{heads: 4, windows: [3, 7], slots: 3, chunk: 4, rope: " + rope + "}");
    layer->to(torch::kDouble);
    const int64_t T = 23;  // past both windows, not a multiple of the chunk
    auto x = torch::randn({2, T, 32}, torch::kDouble);
    auto full = layer->forward(x);
    auto state = layer->initial_state(2, x.options());
    const int64_t bytes = state.bytes();
    for (int64_t t = 0; t < T; ++t) {
      auto y = layer->step(x.select(1, t), state);
      EXPECT_LT(max_abs_diff(y, full.select(1, t)), 1e-10) << "t=" << t;
    }
    EXPECT_EQ(state.position, T);
    // The state holds exactly state_numel numbers per sequence and never grows.
    EXPECT_EQ(state.bytes(), bytes);
    EXPECT_EQ(bytes, 2 * layer->state_numel(T) * static_cast<int64_t>(sizeof(double)));
    EXPECT_EQ(layer->state_numel(T), 4 * 3 * (8 + 8));
    EXPECT_EQ(layer->state_numel(T), layer->state_numel(100000));
  }
}

// ---------------------------------------------------------------------------
// Configuration

TEST(BlaLayerConfig, DefaultsAndDescription) {
  auto layer = make_mixer("bla", "{window: 64, slots: 8}");
  EXPECT_EQ(layer->describe(), "bla(window=64, slots=8, chunk=64, heads=2, head_dim=16, rope=off)");
  EXPECT_EQ(layer->state_numel(10), 2 * 8 * 32);  // 2 * N * d_model
  // Projections like attention's, nothing else: the operators are not parameters or buffers.
  std::vector<std::string> names;
  for (const auto& p : layer->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"}));
  EXPECT_TRUE(layer->buffers().empty());
}

// The model section is line 2 of tiny_mqar_config and `mixers:` line 7. A
// value outside a key's declared range is named with that range
// (config/schema.h); one that conflicts with another key, with both.
TEST(BlaLayerConfig, BadOptionsNameTheKey) {
  EXPECT_EQ(config_error("{window: 6, slots: 8}"),
            "layer.yaml, line 7: model.mixers.bla.slots: slots (8) must be <= window (6): lower slots or raise window");
  EXPECT_EQ(config_error("{window: 6, slots: 0}"),
            "layer.yaml, line 7: model.mixers.bla.slots: value 0 is out of range [1, 4096]");
  EXPECT_EQ(config_error("{window: 6, slots: -2}"),
            "layer.yaml, line 7: model.mixers.bla.slots: value -2 is out of range [1, 4096]");
  EXPECT_EQ(config_error("{window: 6, slots: 3, chunk: 0}"),
            "layer.yaml, line 7: model.mixers.bla.chunk: value 0 is out of range [1, 4096]");
  EXPECT_EQ(config_error("{window: 0, slots: 1}"),
            "layer.yaml, line 7: model.mixers.bla.window: value 0 is out of range [1, 1073741824]");
  EXPECT_EQ(config_error("{window: 6, slots: 3}", {"model.mixers.bla.slots=7"}),
            "--set model.mixers.bla.slots=7: model.mixers.bla.slots: slots (7) must be <= window (6): lower slots or "
            "raise window");
}

TEST(BlaLayerConfig, MissingOrConflictingWindows) {
  EXPECT_EQ(config_error("{slots: 3}"),
            "layer.yaml, line 7: model.mixers.bla.window: is required: the number of tokens the slots cover (an "
            "integer >= slots), or set windows: [...] for one window per head group");
  EXPECT_EQ(config_error("{window: 6}"),
            "layer.yaml, line 7: model.mixers.bla.slots: is required: the number of memory slots per head (1 <= slots "
            "<= window; slots == window is sliding-window attention)");
  EXPECT_EQ(config_error("{window: 6, windows: [6, 12], slots: 3}"),
            "layer.yaml, line 7: model.mixers.bla.windows: window and windows are mutually exclusive: set window for "
            "one window in every head, or windows: [...] for one window per head group, not both");
  EXPECT_EQ(config_error("{windows: [4, 8, 16], slots: 3}"),
            "layer.yaml, line 7: model.mixers.bla.windows: has 3 entries, which does not divide heads (2); give one "
            "window per head group");
  EXPECT_EQ(config_error("{windows: [], slots: 3}"),
            "layer.yaml, line 7: model.mixers.bla.windows: must list at least one window, e.g. windows: [64, 256, 1024]");
  EXPECT_EQ(config_error("{windows: [8, 4], slots: 6}"),
            "layer.yaml, line 7: model.mixers.bla.slots: with windows[1] = 4: slots (6) must be <= window (4): lower "
            "slots or raise window");
  EXPECT_EQ(config_error("{windows: [8, 0], slots: 1}"),
            "layer.yaml, line 7: model.mixers.bla.windows: value 0 is out of range [1, 1073741824]");
  EXPECT_EQ(config_error("{window: 6, slots: 3, rope: true, head_dim: 5}"),
            "layer.yaml, line 7: model.mixers.bla.rope: rotary embedding needs an even head_dim; set rope: false");
  EXPECT_EQ(config_error("{window: 6, slot: 3}"),
            "layer.yaml, line 7: model.mixers.bla.slots: is required: the number of memory slots per head (1 <= slots "
            "<= window; slots == window is sliding-window attention)");
}

}  // namespace
