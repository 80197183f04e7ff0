// The gatedfwa op (src/bla/ops/gatedfwa/; docs/mixers.md, "GatedFWA"): the
// blocked form and the decode step held to the one-query reference, g = 0 to
// plain sliding-window attention, gradients to central differences.
#include "bla/ops/gatedfwa/gatedfwa.h"

#include "bla/ops/attention/attention.h"
#include "bla/ops/gatedfwa/internal.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "support/finite_difference.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>
#include "support/tensor_checks.h"

using bla::testing::max_abs_diff;
using bla::testing::expect_invalid_argument;

namespace bla::ops {
namespace {

struct WindowCase {
  int64_t batch, seq, heads, dk, dv, window, block;
};

std::string describe(const WindowCase& c) {
  return "B=" + std::to_string(c.batch) + " T=" + std::to_string(c.seq) + " H=" + std::to_string(c.heads) +
         " Dk=" + std::to_string(c.dk) + " Dv=" + std::to_string(c.dv) + " W=" + std::to_string(c.window) +
         " block=" + std::to_string(c.block);
}

struct WindowInputs {
  at::Tensor q, k, v, g;
};

// g = logsigmoid(gate_bias + noise): gate_bias -> -inf gives strong decay.
WindowInputs make_inputs(const WindowCase& c, at::ScalarType dtype, uint64_t seed, double gate_bias = 0.0) {
  torch::manual_seed(seed);
  auto o = torch::TensorOptions().dtype(dtype);
  WindowInputs in;
  in.q = torch::randn({c.batch, c.seq, c.heads, c.dk}, o);
  in.k = torch::randn({c.batch, c.seq, c.heads, c.dk}, o);
  in.v = torch::randn({c.batch, c.seq, c.heads, c.dv}, o);
  in.g = torch::log_sigmoid(torch::randn({c.batch, c.seq, c.heads}, o) + gate_bias);
  return in;
}

GatedWindowOptions options_of(const WindowCase& c) {
  GatedWindowOptions opt;
  opt.window = c.window;
  opt.block = c.block;
  return opt;
}

const std::vector<WindowCase> kCases = {
    {1, 8, 2, 4, 4, 3, 4},     // block divides T
    {2, 13, 3, 4, 2, 5, 4},    // block does not divide T, Dk != Dv
    {2, 7, 2, 3, 3, 16, 4},    // window longer than T
    {1, 9, 1, 2, 5, 1, 3},     // window 1: each query sees itself only
    {2, 11, 2, 4, 4, 4, 64},   // block longer than T
    {1, 20, 2, 4, 3, 6, 1},    // block 1
};

TEST(GatedFwaOp, BlockedMatchesReference) {
  for (const auto& c : kCases) {
    for (double gate_bias : {0.0, -4.0}) {
      auto in = make_inputs(c, at::kDouble, 1, gate_bias);
      auto expected = gated_window_attention_reference(in.q, in.k, in.v, in.g, options_of(c));
      auto got = gated_window_attention(in.q, in.k, in.v, in.g, options_of(c));
      ASSERT_EQ(got.sizes(), expected.sizes()) << describe(c);
      EXPECT_LT(max_abs_diff(got, expected), 1e-10) << describe(c) << " gate_bias=" << gate_bias;
    }
  }
}

TEST(GatedFwaOp, ExplicitScaleIsUsed) {
  const WindowCase c{1, 10, 2, 4, 4, 4, 3};
  auto in = make_inputs(c, at::kDouble, 2);
  auto opt = options_of(c);
  opt.scale = 0.9;
  auto expected = gated_window_attention_reference(in.q, in.k, in.v, in.g, opt);
  EXPECT_LT(max_abs_diff(gated_window_attention(in.q, in.k, in.v, in.g, opt), expected), 1e-10);
  // 0.9 differs from the default 1/sqrt(4): the results must differ too.
  EXPECT_GT(max_abs_diff(gated_window_attention(in.q, in.k, in.v, in.g, options_of(c)), expected), 1e-3);
}

// Plain sliding-window attention, written out with a full T x T mask.
at::Tensor plain_sliding_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          int64_t window) {
  const int64_t T = q.size(1);
  auto logits = torch::einsum("bthd,bshd->bhts", {q, k}) / std::sqrt(static_cast<double>(q.size(3)));
  auto t = torch::arange(T).view({T, 1});
  auto s = torch::arange(T).view({1, T});
  auto visible = (s <= t) & (s > t - window);
  auto p = logits.masked_fill(visible.logical_not(), -INFINITY).softmax(-1);
  return torch::einsum("bhts,bshd->bthd", {p, v});
}

TEST(GatedFwaOp, ZeroGateEqualsSlidingWindowAttention) {
  for (const auto& c : kCases) {
    auto in = make_inputs(c, at::kDouble, 3);
    auto zero = torch::zeros_like(in.g);
    auto expected = plain_sliding_window_attention(in.q, in.k, in.v, c.window);
    EXPECT_LT(max_abs_diff(gated_window_attention(in.q, in.k, in.v, zero, options_of(c)), expected), 1e-10)
        << describe(c);
    EXPECT_LT(max_abs_diff(gated_window_attention_reference(in.q, in.k, in.v, zero, options_of(c)), expected), 1e-10)
        << describe(c);
    // With a real gate the result differs (the gate is not ignored) wherever a query sees two keys.
    if (c.window > 1) {
      EXPECT_GT(max_abs_diff(gated_window_attention(in.q, in.k, in.v, in.g, options_of(c)), expected), 1e-3)
          << describe(c);
    }
  }
}

at::Tensor decode_all(const WindowInputs& in, const GatedWindowOptions& opt, GatedWindowState& state, int64_t from) {
  std::vector<at::Tensor> outs;
  for (int64_t t = from; t < in.q.size(1); ++t) {
    outs.push_back(gated_window_decode_step(in.q.select(1, t), in.k.select(1, t), in.v.select(1, t),
                                            in.g.select(1, t), opt, state));
  }
  return at::stack(outs, 1);
}

TEST(GatedFwaOp, DecodeMatchesReference) {
  torch::NoGradGuard no_grad;
  for (const auto& c : kCases) {
    auto in = make_inputs(c, at::kDouble, 4, -1.0);
    auto expected = gated_window_attention_reference(in.q, in.k, in.v, in.g, options_of(c));
    auto state = gated_window_initial_state(c.batch, c.heads, c.dk, c.dv, options_of(c), in.q.options());
    auto got = decode_all(in, options_of(c), state, 0);
    EXPECT_EQ(state.position, c.seq);
    EXPECT_LT(max_abs_diff(got, expected), 1e-10) << describe(c);
  }
}

TEST(GatedFwaOp, PrefillThenDecodeContinuesExactly) {
  torch::NoGradGuard no_grad;
  const WindowCase c{2, 30, 2, 4, 3, 6, 4};
  auto in = make_inputs(c, at::kDouble, 5, -1.0);
  auto expected = gated_window_attention_reference(in.q, in.k, in.v, in.g, options_of(c));
  for (int64_t prompt : {1, 4, 6, 13}) {  // shorter than, equal to and longer than the window
    auto state = gated_window_initial_state(c.batch, c.heads, c.dk, c.dv, options_of(c), in.q.options());
    auto head = gated_window_prefill(in.q.narrow(1, 0, prompt), in.k.narrow(1, 0, prompt),
                                     in.v.narrow(1, 0, prompt), in.g.narrow(1, 0, prompt), options_of(c), state);
    EXPECT_EQ(state.position, prompt);
    auto tail = decode_all(in, options_of(c), state, prompt);
    EXPECT_LT(max_abs_diff(at::cat({head, tail}, 1), expected), 1e-10) << "prompt " << prompt;
  }
}

TEST(GatedFwaOp, GradientsMatchFiniteDifferences) {
  const WindowCase c{1, 7, 2, 3, 2, 3, 2};  // 4 blocks, the last padded; windows cross blocks
  auto in = make_inputs(c, at::kDouble, 6, -0.5);
  auto f = [&](const std::vector<at::Tensor>& t) {
    return gated_window_attention(t[0], t[1], t[2], t[3], options_of(c));
  };
  EXPECT_TRUE(bla::testing::gradients_match(f, {in.q, in.k, in.v, in.g}));
}

// The kernel path's segments (segmented.cpp), run with the attention op's CPU
// form as the biased attention: equal to the blocked form in float64, outputs
// and every gradient, for one segment, several, a partial last one, a segment
// as short as the window, and window 1.
TEST(GatedFwaOp, SegmentedFormMatchesTheBlockedForm) {
  struct SegmentCase {
    WindowCase c;
    int64_t segment;
  };
  const std::vector<SegmentCase> cases = {
      {{1, 8, 2, 4, 4, 3, 64}, 8},    // T == segment: one call
      {{2, 23, 2, 4, 3, 5, 64}, 6},   // four segments, the last partial; Dk != Dv
      {{1, 16, 1, 3, 3, 4, 64}, 4},   // segment == window
      {{1, 11, 2, 2, 2, 1, 64}, 3},   // window 1: no key repeated
      {{2, 40, 2, 4, 4, 7, 64}, 16},  // 16 + 16 + 8
  };
  for (const auto& [c, segment] : cases) {
    auto in = make_inputs(c, at::kDouble, 11, -0.5);
    auto attend = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias) {
      EXPECT_LE(q.size(1), segment + c.window - 1) << describe(c);
      WindowOptions window;
      window.window = c.window;
      return sliding_window_attention(q, k, v, window, bias);
    };
    auto run = [&](bool segmented) {
      std::vector<at::Tensor> x = {in.q.clone().requires_grad_(true), in.k.clone().requires_grad_(true),
                                   in.v.clone().requires_grad_(true), in.g.clone().requires_grad_(true)};
      auto out = segmented ? gatedfwa_internal::segmented_gated_window_attention(x[0], x[1], x[2], x[3], c.window,
                                                                                 segment, attend)
                           : gated_window_attention(x[0], x[1], x[2], x[3], options_of(c));
      torch::manual_seed(12);  // randn, not randn_like: the two forms' outputs have different strides
      out.backward(torch::randn(out.sizes(), out.options()));
      return std::vector<at::Tensor>{out.detach(), x[0].grad(), x[1].grad(), x[2].grad(), x[3].grad()};
    };
    const auto expected = run(false), got = run(true);
    const char* names[] = {"out", "dq", "dk", "dv", "dg"};
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_LT(max_abs_diff(got[i], expected[i]), 1e-10) << names[i] << " " << describe(c) << " segment " << segment;
    }
  }
  const auto in = make_inputs({1, 8, 1, 2, 2, 5, 64}, at::kDouble, 1);
  expect_invalid_argument(
      [&] { gatedfwa_internal::segmented_gated_window_attention(in.q, in.k, in.v, in.g, 5, 4, {}); },
      "bla: gated window segment (4) must be >= the window (5) and the window >= 1");
}

// The segments' windows against narrow + stack on the input padded by
// repeating its last position, values and gradients (a random upstream
// gradient, so the padding's gradient, which the op itself never feeds,
// is not zero here): (B, T, ...) inputs of 3 and 4 dimensions, windows that
// fit and windows that run past the end.
TEST(GatedFwaOp, OverlappingWindowsAreNarrowsOfThePaddedInput) {
  struct WindowsCase {
    std::vector<int64_t> shape;
    int64_t start, size, step, count;
  };
  const std::vector<WindowsCase> cases = {
      {{2, 23, 3}, 1, 8, 6, 4},      // 1 + 18 + 8 = 27: four positions of padding
      {{1, 20, 2, 3}, 2, 7, 6, 3},   // 2 + 12 + 7 = 21: one
      {{2, 16, 2, 2}, 0, 6, 5, 3},   // 0 + 10 + 6 = 16: none
  };
  torch::manual_seed(21);
  for (const auto& c : cases) {
    const at::Tensor x0 = torch::randn(c.shape, torch::TensorOptions().dtype(at::kDouble));
    const at::Tensor x = x0.clone().requires_grad_(true), y = x0.clone().requires_grad_(true);
    const at::Tensor got = gatedfwa_internal::overlapping_windows(x, c.start, c.size, c.step, c.count);
    const int64_t length = c.shape[1], needed = c.start + (c.step) * (c.count - 1) + c.size;
    at::Tensor padded = y;
    for (int64_t t = length; t < needed; ++t) padded = at::cat({padded, y.narrow(1, length - 1, 1)}, 1);
    std::vector<at::Tensor> parts;
    for (int64_t j = 0; j < c.count; ++j) parts.push_back(padded.narrow(1, c.start + j * c.step, c.size));
    std::vector<int64_t> flat = {c.shape[0] * c.count, c.size};
    for (size_t d = 2; d < c.shape.size(); ++d) flat.push_back(c.shape[d]);
    const at::Tensor want = at::stack(parts, 1).reshape(flat);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(torch::equal(got, want));
    const at::Tensor upstream = torch::randn(want.sizes(), want.options());
    got.backward(upstream);
    want.backward(upstream);
    EXPECT_LT(max_abs_diff(x.grad(), y.grad()), 1e-12) << "start " << c.start << " count " << c.count;
  }
}

// What the segments are for: with G as a float32 bias, a long sequence of
// strong gates loses precision in one call (|G| grows to ~1e4) and keeps it
// in segments (|G| bounded by a segment's decay), outputs and the gate's
// gradient alike.
TEST(GatedFwaOp, SegmentsKeepAFloat32BiasPrecise) {
  const WindowCase c{1, 2048, 2, 8, 8, 32, 64};
  auto in = make_inputs(c, at::kDouble, 13, -1.0);
  in.g = in.g * 3;  // about -4 per token on average
  const auto grad_out = torch::randn({1, 2048, 2, 8}, torch::TensorOptions().dtype(at::kDouble));
  auto run = [&](at::ScalarType dtype, int64_t segment) {
    auto leaf = [&](const at::Tensor& t) { return t.to(dtype).detach().requires_grad_(true); };
    std::vector<at::Tensor> x = {leaf(in.q), leaf(in.k), leaf(in.v), leaf(in.g)};
    auto attend = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias) {
      WindowOptions window;
      window.window = c.window;
      return sliding_window_attention(q, k, v, window, bias);
    };
    auto out = gatedfwa_internal::segmented_gated_window_attention(x[0], x[1], x[2], x[3], c.window, segment, attend);
    out.backward(grad_out.to(dtype));
    return std::pair<at::Tensor, at::Tensor>{out.detach().to(at::kDouble), x[3].grad().to(at::kDouble)};
  };
  const auto [out64, dg64] = run(at::kDouble, 2048);
  auto relative = [](const at::Tensor& x, const at::Tensor& ref) {
    return (x - ref).norm().item<double>() / ref.norm().item<double>();
  };
  const auto [whole_out, whole_dg] = run(at::kFloat, 2048);
  const auto [seg_out, seg_dg] = run(at::kFloat, 128);
  std::printf("float32 bias, one call: out %.2e dg %.2e; segments of 128: out %.2e dg %.2e\n",
              relative(whole_out, out64), relative(whole_dg, dg64), relative(seg_out, out64), relative(seg_dg, dg64));
  EXPECT_LT(relative(seg_out, out64), 1e-5);
  EXPECT_LT(relative(seg_dg, dg64), 1e-4);
  EXPECT_GT(relative(whole_out, out64), 5 * relative(seg_out, out64));
}

// Strong gates over a long sequence: G reaches about -1.7e4, where a global
// cumsum in float32 puts errors of about 1e-3 into the logits (the float32
// reference is off by 2e-4 relative here). The blocked form's local cumsum
// keeps float32 close to float64 (about 1e-5 relative), gradients included.
TEST(GatedFwaOp, LongSequenceFloat32MatchesFloat64) {
  const WindowCase c{1, 4096, 2, 8, 8, 64, 64};
  auto in = make_inputs(c, at::kDouble, 7, -1.0);
  in.g = in.g * 3;  // about -4 per token on average
  auto expected = gated_window_attention_reference(in.q, in.k, in.v, in.g, options_of(c));
  auto g32 = in.g.to(at::kFloat).requires_grad_(true);
  auto q32 = in.q.to(at::kFloat).requires_grad_(true);
  auto got = gated_window_attention(q32, in.k.to(at::kFloat), in.v.to(at::kFloat), g32, options_of(c));
  ASSERT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_TRUE(torch::isfinite(got).all().item<bool>());
  EXPECT_LT(max_abs_diff(got, expected) / expected.abs().max().item<double>(), 1e-4);
  got.sum().backward();
  EXPECT_TRUE(torch::isfinite(g32.grad()).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(q32.grad()).all().item<bool>());
}

TEST(GatedFwaOp, RejectsBadOptionsAndShapes) {
  const WindowCase c{1, 5, 2, 4, 4, 3, 2};
  auto in = make_inputs(c, at::kDouble, 8);
  auto opt = options_of(c);
  opt.window = 0;
  expect_invalid_argument([&] { gated_window_attention(in.q, in.k, in.v, in.g, opt); },
                          "bla: gated window window (0) must be >= 1; set window to the number of keys each query sees");
  opt = options_of(c);
  opt.block = -1;
  expect_invalid_argument([&] { gated_window_attention(in.q, in.k, in.v, in.g, opt); },
                          "bla: gated window block (-1) must be >= 1; use a positive query block such as 64");
  expect_invalid_argument(
      [&] { gated_window_attention(in.q, in.k, in.v, in.g.narrow(2, 0, 1), options_of(c)); },
      "bla: gated window log_gate must be (batch, seq, heads) = [1, 5, 2]; got [1, 5, 1]");
  expect_invalid_argument(
      [&] { gated_window_attention(in.q, in.k.narrow(3, 0, 3), in.v, in.g, options_of(c)); },
      "bla: gated window k must be (batch, seq, heads, head_dim) = [1, 5, 2, 4]; got [1, 5, 2, 3]");
  auto state = gated_window_initial_state(1, 2, 4, 4, options_of(c), in.q.options());
  gated_window_prefill(in.q, in.k, in.v, in.g, options_of(c), state);
  expect_invalid_argument(
      [&] { gated_window_prefill(in.q, in.k, in.v, in.g, options_of(c), state); },
      "bla: gated window prefill needs a fresh state (position 0); got position 5; continue with "
      "gated_window_decode_step or start from gated_window_initial_state");
  auto small = options_of(c);
  small.window = 2;
  expect_invalid_argument(
      [&] {
        gated_window_decode_step(in.q.select(1, 0), in.k.select(1, 0), in.v.select(1, 0), in.g.select(1, 0), small,
                                 state);
      },
      "bla: gated window state keys must be (batch, window, heads, head_dim) = [1, 2, 2, 4]; got [1, 3, 2, 4]");
}

}  // namespace
}  // namespace bla::ops
