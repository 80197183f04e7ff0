// GLA ops (src/bla/ops/gla/): the chunked form and the decode step held to the
// token-by-token recurrence, gradients to central differences, long strongly
// decaying sequences in float32, and option/shape errors.
#include "bla/ops/gla/gla.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "support/finite_difference.h"
#include "support/tensor_checks.h"

using bla::testing::max_abs_diff;
using bla::testing::expect_invalid_argument;

namespace {

using bla::ops::GlaOptions;
using bla::ops::GlaState;

struct GlaInputs {
  torch::Tensor q, k, v, g;
};

// Log-decays uniform in [g_low, g_high] (<= 0).
GlaInputs random_inputs(int64_t B, int64_t T, int64_t H, int64_t Dk, int64_t Dv, torch::Dtype dtype, uint64_t seed,
                        double g_low = -2.0, double g_high = -0.05) {
  torch::manual_seed(seed);
  const auto opts = torch::TensorOptions().dtype(dtype);
  GlaInputs in;
  in.q = torch::randn({B, T, H, Dk}, opts);
  in.k = torch::randn({B, T, H, Dk}, opts);
  in.v = torch::randn({B, T, H, Dv}, opts);
  in.g = torch::rand({B, T, H, Dk}, opts) * (g_high - g_low) + g_low;
  return in;
}

struct Shape {
  int64_t B, T, H, Dk, Dv, chunk, subchunk;
};

// Chunk dividing T or not, T shorter than a chunk, sub-chunk of 1 (all
// off-diagonal) and equal to the chunk (all pairwise), B = H = 2, Dk != Dv.
const std::vector<Shape> kShapes = {
    {2, 13, 2, 4, 3, 4, 2},   {1, 37, 2, 5, 6, 8, 4}, {2, 9, 2, 3, 5, 64, 16},
    {1, 48, 2, 4, 4, 16, 16}, {2, 20, 2, 3, 2, 5, 1}, {1, 70, 1, 6, 3, 64, 16},
};

TEST(GlaChunked, MatchesReferenceInFloat64) {
  for (const auto& s : kShapes) {
    const auto in = random_inputs(s.B, s.T, s.H, s.Dk, s.Dv, torch::kFloat64, 1 + s.T);
    const GlaOptions opt{s.chunk, 0.0, s.subchunk};
    const auto reference = bla::ops::gated_linear_attention_reference(in.q, in.k, in.v, in.g, opt);
    const auto chunked = bla::ops::gated_linear_attention(in.q, in.k, in.v, in.g, opt);
    ASSERT_EQ(chunked.sizes(), reference.sizes());
    EXPECT_LT(max_abs_diff(chunked, reference), 1e-10) << "T=" << s.T << " chunk=" << s.chunk;
  }
}

TEST(GlaChunked, ScaleOptionMultipliesOutput) {
  const auto in = random_inputs(1, 10, 2, 4, 3, torch::kFloat64, 7);
  const auto reference = bla::ops::gated_linear_attention_reference(in.q, in.k, in.v, in.g, {8, 0.3, 4});
  const auto chunked = bla::ops::gated_linear_attention(in.q, in.k, in.v, in.g, {8, 0.3, 4});
  const auto default_scale = bla::ops::gated_linear_attention(in.q, in.k, in.v, in.g, {8, 0.0, 4});
  EXPECT_LT(max_abs_diff(chunked, reference), 1e-10);
  EXPECT_LT(max_abs_diff(chunked, default_scale * (0.3 * 2.0)), 1e-10);  // default is 4^-1/2
}

// Decay so strong (g down to -100 per token) that the factored scores
// (q e^{b_i}).(k e^{-b_j}) would overflow even float64 within a chunk.
TEST(GlaChunked, StrongDecayMatchesReferenceInFloat64) {
  const auto in = random_inputs(2, 40, 2, 4, 3, torch::kFloat64, 11, -100.0, -0.01);
  const GlaOptions opt{16, 0.0, 8};
  const auto reference = bla::ops::gated_linear_attention_reference(in.q, in.k, in.v, in.g, opt);
  const auto chunked = bla::ops::gated_linear_attention(in.q, in.k, in.v, in.g, opt);
  EXPECT_TRUE(torch::isfinite(chunked).all().item<bool>());
  EXPECT_LT(max_abs_diff(chunked, reference), 1e-10);
}

TEST(GlaDecode, MatchesReferenceInFloat64) {
  for (const auto& s : kShapes) {
    const auto in = random_inputs(s.B, s.T, s.H, s.Dk, s.Dv, torch::kFloat64, 100 + s.T);
    const auto reference = bla::ops::gated_linear_attention_reference(in.q, in.k, in.v, in.g);
    auto state = bla::ops::gla_initial_state(s.B, s.H, s.Dk, s.Dv, torch::kFloat64);
    std::vector<torch::Tensor> outputs;
    for (int64_t t = 0; t < s.T; ++t)
      outputs.push_back(
          bla::ops::gla_decode_step(in.q.select(1, t), in.k.select(1, t), in.v.select(1, t), in.g.select(1, t), state));
    EXPECT_LT(max_abs_diff(torch::stack(outputs, 1), reference), 1e-10) << "T=" << s.T;
    EXPECT_EQ(state.position, s.T);
    EXPECT_EQ(state.state.sizes(), torch::IntArrayRef({s.B, s.H, s.Dk, s.Dv}));  // bounded: no growth with T
  }
}

TEST(GlaChunked, PrefillThenDecodeContinuesTheSequence) {
  const int64_t T = 19, prompt = 11;
  const auto in = random_inputs(2, T, 2, 4, 3, torch::kFloat64, 21);
  const GlaOptions opt{4, 0.0, 2};
  const auto full = bla::ops::gated_linear_attention(in.q, in.k, in.v, in.g, opt);

  auto state = bla::ops::gla_initial_state(2, 2, 4, 3, torch::kFloat64);
  auto part = [&](int64_t from, int64_t length) {
    return std::vector<torch::Tensor>{in.q.narrow(1, from, length), in.k.narrow(1, from, length),
                                      in.v.narrow(1, from, length), in.g.narrow(1, from, length)};
  };
  const auto p = part(0, prompt);
  std::vector<torch::Tensor> outputs{bla::ops::gated_linear_attention_with_state(p[0], p[1], p[2], p[3], state, opt)};
  EXPECT_EQ(state.position, prompt);
  for (int64_t t = prompt; t < T; ++t)
    outputs.push_back(bla::ops::gla_decode_step(in.q.select(1, t), in.k.select(1, t), in.v.select(1, t),
                                                in.g.select(1, t), state, opt)
                          .unsqueeze(1));
  EXPECT_LT(max_abs_diff(torch::cat(outputs, 1), full), 1e-10);
  EXPECT_EQ(state.position, T);

  // Two chunked pieces (prompt length not a multiple of the chunk) as well.
  auto pieces = bla::ops::gla_initial_state(2, 2, 4, 3, torch::kFloat64);
  const auto rest = part(prompt, T - prompt);
  const auto first = bla::ops::gated_linear_attention_with_state(p[0], p[1], p[2], p[3], pieces, opt);
  const auto second = bla::ops::gated_linear_attention_with_state(rest[0], rest[1], rest[2], rest[3], pieces, opt);
  EXPECT_LT(max_abs_diff(torch::cat({first, second}, 1), full), 1e-10);
  EXPECT_LT(max_abs_diff(pieces.state, state.state), 1e-10);
}

TEST(GlaChunked, GradientsMatchFiniteDifferences) {
  const auto in = random_inputs(2, 6, 1, 3, 2, torch::kFloat64, 31, -1.5, -0.1);
  const GlaOptions opt{4, 0.0, 2};  // two chunks, the second partial; two sub-chunks each
  auto f = [&](const std::vector<at::Tensor>& x) {
    return bla::ops::gated_linear_attention(x[0], x[1], x[2], x[3], opt);
  };
  EXPECT_TRUE(bla::testing::gradients_match(f, {in.q, in.k, in.v, in.g}));
}

// The carried state is differentiable too (training over consecutive segments).
TEST(GlaChunked, GradientsThroughInitialStateMatchFiniteDifferences) {
  const auto in = random_inputs(1, 5, 2, 3, 2, torch::kFloat64, 41, -1.0, -0.1);
  const auto initial = torch::randn({1, 2, 3, 2}, torch::kFloat64);
  const GlaOptions opt{2, 0.0, 1};
  auto f = [&](const std::vector<at::Tensor>& x) {
    GlaState state{x[0], 0};
    const auto out = bla::ops::gated_linear_attention_with_state(in.q, in.k, in.v, x[1], state, opt);
    return torch::cat({out.reshape(-1), state.state.reshape(-1)});
  };
  EXPECT_TRUE(bla::testing::gradients_match(f, {initial, in.g}));
}

// T = 4096 with decays from -5 to -0.01 per token and every 7th token -200:
// within a 64-token chunk the cumulative decay reaches hundreds, far past
// float32's exp range, yet float32 must stay finite and match float64.
TEST(GlaChunked, LongStrongDecayFloat32MatchesFloat64) {
  auto in = random_inputs(1, 4096, 1, 8, 8, torch::kFloat64, 51, -5.0, -0.01);
  in.g.slice(1, 0, 4096, 7).fill_(-200.0);
  const auto exact = bla::ops::gated_linear_attention(in.q, in.k, in.v, in.g);
  const auto single = bla::ops::gated_linear_attention(in.q.to(torch::kFloat32), in.k.to(torch::kFloat32),
                                                       in.v.to(torch::kFloat32), in.g.to(torch::kFloat32));
  ASSERT_EQ(single.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(single).all().item<bool>());
  const double magnitude = exact.abs().max().item<double>();
  EXPECT_LT(max_abs_diff(single, exact) / magnitude, 1e-4);
  // The float64 chunked form itself agrees with the recurrence here.
  const auto recurrent = bla::ops::gated_linear_attention_reference(in.q, in.k, in.v, in.g);
  EXPECT_LT(max_abs_diff(exact, recurrent) / magnitude, 1e-12);
}

TEST(GlaOptionsCheck, RejectsBadChunkingWithExactMessages) {
  const auto in = random_inputs(1, 5, 1, 4, 3, torch::kFloat64, 61);
  auto run = [&](GlaOptions opt) {
    return [&, opt] { bla::ops::gated_linear_attention(in.q, in.k, in.v, in.g, opt); };
  };
  expect_invalid_argument(run({0, 0.0, 16}), "bla: gla chunk (0) must be >= 1; use a positive chunk length such as 64");
  expect_invalid_argument(run({-3, 0.0, 16}),
                          "bla: gla chunk (-3) must be >= 1; use a positive chunk length such as 64");
  expect_invalid_argument(run({64, 0.0, 0}),
                          "bla: gla subchunk (0) must be >= 1; use a positive sub-chunk length such as 16");
  expect_invalid_argument(run({64, 0.0, 5}),
                          "bla: gla subchunk (5) must divide chunk (64); pick a divisor of chunk such as 16 or 8");
  // A sub-chunk longer than the chunk just means one pairwise block per chunk.
  EXPECT_NO_THROW(bla::ops::gated_linear_attention(in.q, in.k, in.v, in.g, {8, 0.0, 16}));
}

TEST(GlaOptionsCheck, RejectsBadShapesWithExactMessages) {
  const auto in = random_inputs(2, 5, 2, 4, 3, torch::kFloat64, 71);
  const auto k3 = torch::randn({2, 5, 2, 3}, torch::kFloat64);
  expect_invalid_argument([&] { bla::ops::gated_linear_attention(in.q.select(2, 0), in.k, in.v, in.g); },
                          "bla: gla q must be 4-D (batch, seq, heads, key_dim); got shape [2, 5, 4]");
  expect_invalid_argument([&] { bla::ops::gated_linear_attention(in.q, k3, in.v, in.g); },
                          "bla: gla k must have the shape of q [2, 5, 2, 4]; got [2, 5, 2, 3]");
  expect_invalid_argument([&] { bla::ops::gated_linear_attention(in.q, in.k, in.v, k3); },
                          "bla: gla g must have the shape of q [2, 5, 2, 4]; got [2, 5, 2, 3]");
  expect_invalid_argument([&] { bla::ops::gated_linear_attention_reference(in.q, in.k, in.v.narrow(1, 0, 4), in.g); },
                          "bla: gla v must be (batch, seq, heads, value_dim) with batch, seq, heads of q "
                          "[2, 5, 2, 4]; got [2, 4, 2, 3]");
  expect_invalid_argument([&] { bla::ops::gated_linear_attention(in.q, in.k, in.v.to(torch::kFloat32), in.g); },
                          "bla: gla q, k, v and g must share one dtype; got Double, Double, Float, Double");

  auto wrong = bla::ops::gla_initial_state(2, 2, 3, 4, torch::kFloat64);
  expect_invalid_argument([&] { bla::ops::gated_linear_attention_with_state(in.q, in.k, in.v, in.g, wrong); },
                          "bla: gla state must have shape (batch, heads, key_dim, value_dim) = [2, 2, 4, 3]; got "
                          "[2, 2, 3, 4]; make it with gla_initial_state");
  GlaState empty;
  expect_invalid_argument(
      [&] {
        bla::ops::gla_decode_step(in.q.select(1, 0), in.k.select(1, 0), in.v.select(1, 0), in.g.select(1, 0), empty);
      },
      "bla: gla state must have shape (batch, heads, key_dim, value_dim) = [2, 2, 4, 3]; got an "
      "undefined tensor; make it with gla_initial_state");
  auto state = bla::ops::gla_initial_state(2, 2, 4, 3, torch::kFloat64);
  expect_invalid_argument([&] { bla::ops::gla_decode_step(in.q, in.k, in.v, in.g, state); },
                          "bla: gla decode q must be 3-D (batch, heads, key_dim); got shape [2, 5, 2, 4]");
  expect_invalid_argument(
      [&] {
        bla::ops::gla_decode_step(in.q.select(1, 0), in.k.select(1, 0), in.v.select(1, 0), k3.select(1, 0), state);
      },
      "bla: gla decode g must have the shape of q [2, 2, 4]; got [2, 2, 3]");
  EXPECT_EQ(state.position, 0);
}

}  // namespace
