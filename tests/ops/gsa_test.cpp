// GSA ops (src/bla/ops/gsa/): the chunked two-pass form and the decode step
// held to the token-by-token recurrence, gradients to central differences,
// long strongly gated sequences in float32, and option/shape errors.
#include "bla/ops/gsa/gsa.h"

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

using bla::ops::GsaOptions;
using bla::ops::GsaState;

struct GsaInputs {
  torch::Tensor q, k, v, f;
};

// Log forget gates uniform in [f_low, f_high] (<= 0).
GsaInputs random_inputs(int64_t B, int64_t T, int64_t H, int64_t Dk, int64_t Dv, int64_t m, torch::Dtype dtype,
                        uint64_t seed, double f_low = -3.0, double f_high = -0.05) {
  torch::manual_seed(seed);
  const auto opts = torch::TensorOptions().dtype(dtype);
  GsaInputs in;
  in.q = torch::randn({B, T, H, Dk}, opts);
  in.k = torch::randn({B, T, H, Dk}, opts);
  in.v = torch::randn({B, T, H, Dv}, opts);
  in.f = torch::rand({B, T, H, m}, opts) * (f_high - f_low) + f_low;
  return in;
}

struct Shape {
  int64_t B, T, H, Dk, Dv, m, chunk, subchunk;
};

// Chunk dividing T or not, T shorter than a chunk, sub-chunks of 1 and of a
// whole chunk, B = H = 2, and m, Dk, Dv all different.
const std::vector<Shape> kShapes = {
    {2, 13, 2, 4, 3, 5, 4, 2},   {1, 37, 2, 5, 6, 3, 8, 4}, {2, 9, 2, 3, 5, 4, 64, 16},
    {1, 48, 2, 4, 4, 6, 16, 16}, {2, 20, 2, 3, 2, 7, 5, 1}, {1, 70, 1, 6, 3, 8, 64, 16},
};

TEST(GsaChunked, MatchesReferenceInFloat64) {
  for (const auto& s : kShapes) {
    const auto in = random_inputs(s.B, s.T, s.H, s.Dk, s.Dv, s.m, torch::kFloat64, 1 + s.T);
    const GsaOptions opt{s.chunk, 0.7, s.subchunk};
    const auto reference = bla::ops::gated_slot_attention_reference(in.q, in.k, in.v, in.f, opt);
    const auto chunked = bla::ops::gated_slot_attention(in.q, in.k, in.v, in.f, opt);
    ASSERT_EQ(chunked.sizes(), reference.sizes());
    EXPECT_LT(max_abs_diff(chunked, reference), 1e-10) << "T=" << s.T << " chunk=" << s.chunk;
  }
}

// Forget gates down to -100 per token: factored decays would overflow float64.
TEST(GsaChunked, StrongForgetMatchesReferenceInFloat64) {
  const auto in = random_inputs(2, 40, 2, 4, 3, 5, torch::kFloat64, 11, -100.0, -0.01);
  const GsaOptions opt{16, 1.0, 8};
  const auto reference = bla::ops::gated_slot_attention_reference(in.q, in.k, in.v, in.f, opt);
  const auto chunked = bla::ops::gated_slot_attention(in.q, in.k, in.v, in.f, opt);
  EXPECT_TRUE(torch::isfinite(chunked).all().item<bool>());
  EXPECT_LT(max_abs_diff(chunked, reference), 1e-10);
}

TEST(GsaDecode, MatchesReferenceInFloat64) {
  for (const auto& s : kShapes) {
    const auto in = random_inputs(s.B, s.T, s.H, s.Dk, s.Dv, s.m, torch::kFloat64, 100 + s.T);
    const auto reference = bla::ops::gated_slot_attention_reference(in.q, in.k, in.v, in.f);
    auto state = bla::ops::gsa_initial_state(s.B, s.H, s.m, s.Dk, s.Dv, torch::kFloat64);
    std::vector<torch::Tensor> outputs;
    for (int64_t t = 0; t < s.T; ++t)
      outputs.push_back(
          bla::ops::gsa_decode_step(in.q.select(1, t), in.k.select(1, t), in.v.select(1, t), in.f.select(1, t), state));
    EXPECT_LT(max_abs_diff(torch::stack(outputs, 1), reference), 1e-10) << "T=" << s.T;
    EXPECT_EQ(state.position, s.T);
    // Bounded: m x (Dk + Dv) per head whatever T.
    EXPECT_EQ(state.keys.sizes(), torch::IntArrayRef({s.B, s.H, s.m, s.Dk}));
    EXPECT_EQ(state.values.sizes(), torch::IntArrayRef({s.B, s.H, s.m, s.Dv}));
  }
}

TEST(GsaChunked, PrefillThenDecodeContinuesTheSequence) {
  const int64_t T = 19, prompt = 11;
  const auto in = random_inputs(2, T, 2, 4, 3, 5, torch::kFloat64, 21);
  const GsaOptions opt{4, 1.0, 2};
  const auto full = bla::ops::gated_slot_attention(in.q, in.k, in.v, in.f, opt);

  auto part = [&](int64_t from, int64_t length) {
    return std::vector<torch::Tensor>{in.q.narrow(1, from, length), in.k.narrow(1, from, length),
                                      in.v.narrow(1, from, length), in.f.narrow(1, from, length)};
  };
  const auto p = part(0, prompt);
  auto state = bla::ops::gsa_initial_state(2, 2, 5, 4, 3, torch::kFloat64);
  std::vector<torch::Tensor> outputs{bla::ops::gated_slot_attention_with_state(p[0], p[1], p[2], p[3], state, opt)};
  EXPECT_EQ(state.position, prompt);
  for (int64_t t = prompt; t < T; ++t)
    outputs.push_back(bla::ops::gsa_decode_step(in.q.select(1, t), in.k.select(1, t), in.v.select(1, t),
                                                in.f.select(1, t), state, opt)
                          .unsqueeze(1));
  EXPECT_LT(max_abs_diff(torch::cat(outputs, 1), full), 1e-10);
  EXPECT_EQ(state.position, T);

  auto pieces = bla::ops::gsa_initial_state(2, 2, 5, 4, 3, torch::kFloat64);
  const auto rest = part(prompt, T - prompt);
  const auto first = bla::ops::gated_slot_attention_with_state(p[0], p[1], p[2], p[3], pieces, opt);
  const auto second = bla::ops::gated_slot_attention_with_state(rest[0], rest[1], rest[2], rest[3], pieces, opt);
  EXPECT_LT(max_abs_diff(torch::cat({first, second}, 1), full), 1e-10);
  EXPECT_LT(max_abs_diff(pieces.keys, state.keys), 1e-10);
  EXPECT_LT(max_abs_diff(pieces.values, state.values), 1e-10);
}

TEST(GsaChunked, GradientsMatchFiniteDifferences) {
  const auto in = random_inputs(2, 6, 1, 3, 2, 4, torch::kFloat64, 31, -1.5, -0.1);
  const GsaOptions opt{4, 1.0, 2};  // two chunks, the second partial; two sub-chunks each
  auto f = [&](const std::vector<at::Tensor>& x) {
    return bla::ops::gated_slot_attention(x[0], x[1], x[2], x[3], opt);
  };
  EXPECT_TRUE(bla::testing::gradients_match(f, {in.q, in.k, in.v, in.f}));
}

// The carried slots are differentiable too (training over consecutive segments).
TEST(GsaChunked, GradientsThroughInitialSlotsMatchFiniteDifferences) {
  const auto in = random_inputs(1, 5, 2, 3, 2, 4, torch::kFloat64, 41, -1.0, -0.1);
  const auto keys = torch::randn({1, 2, 4, 3}, torch::kFloat64);
  const auto values = torch::randn({1, 2, 4, 2}, torch::kFloat64);
  const GsaOptions opt{2, 1.0, 1};
  auto f = [&](const std::vector<at::Tensor>& x) {
    GsaState state{x[0], x[1], 0};
    const auto out = bla::ops::gated_slot_attention_with_state(in.q, in.k, in.v, x[2], state, opt);
    return torch::cat({out.reshape(-1), state.keys.reshape(-1), state.values.reshape(-1)});
  };
  EXPECT_TRUE(bla::testing::gradients_match(f, {keys, values, in.f}));
}

// T = 4096, gates from -5 to -0.01 per token and every 7th token -200: the
// cumulative decay in a chunk is far past float32's exp range.
TEST(GsaChunked, LongStrongForgetFloat32MatchesFloat64) {
  auto in = random_inputs(1, 4096, 1, 8, 8, 8, torch::kFloat64, 51, -5.0, -0.01);
  in.f.slice(1, 0, 4096, 7).fill_(-200.0);
  const auto exact = bla::ops::gated_slot_attention(in.q, in.k, in.v, in.f);
  const auto single = bla::ops::gated_slot_attention(in.q.to(torch::kFloat32), in.k.to(torch::kFloat32),
                                                     in.v.to(torch::kFloat32), in.f.to(torch::kFloat32));
  ASSERT_EQ(single.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(single).all().item<bool>());
  const double magnitude = exact.abs().max().item<double>();
  EXPECT_LT(max_abs_diff(single, exact) / magnitude, 1e-4);
  const auto recurrent = bla::ops::gated_slot_attention_reference(in.q, in.k, in.v, in.f);
  EXPECT_LT(max_abs_diff(exact, recurrent) / magnitude, 1e-12);
}

TEST(GsaOptionsCheck, RejectsBadOptionsWithExactMessages) {
  const auto in = random_inputs(1, 5, 1, 4, 3, 2, torch::kFloat64, 61);
  auto run = [&](GsaOptions opt) { return [&, opt] { bla::ops::gated_slot_attention(in.q, in.k, in.v, in.f, opt); }; };
  expect_invalid_argument(run({0, 1.0, 16}), "bla: gsa chunk (0) must be >= 1; use a positive chunk length such as 64");
  expect_invalid_argument(run({64, 1.0, -1}),
                          "bla: gsa subchunk (-1) must be >= 1; use a positive sub-chunk length such as 16");
  expect_invalid_argument(run({12, 1.0, 8}),
                          "bla: gsa subchunk (8) must divide chunk (12); pick a divisor of chunk such as 16 or 8");
  expect_invalid_argument(run({64, 0.0, 16}), "bla: gsa scale (0) must be > 0; the default is 1.0");
  expect_invalid_argument(
      [&] {
        bla::ops::gated_slot_attention_reference(in.q, in.k, in.v, in.f, {64, -2.0, 16});
      },
      "bla: gsa scale (-2) must be > 0; the default is 1.0");
}

TEST(GsaOptionsCheck, RejectsBadShapesWithExactMessages) {
  const auto in = random_inputs(2, 5, 2, 4, 3, 6, torch::kFloat64, 71);
  const auto k3 = torch::randn({2, 5, 2, 3}, torch::kFloat64);
  expect_invalid_argument([&] { bla::ops::gated_slot_attention(in.q.select(2, 0), in.k, in.v, in.f); },
                          "bla: gsa q must be 4-D (batch, seq, heads, key_dim); got shape [2, 5, 4]");
  expect_invalid_argument([&] { bla::ops::gated_slot_attention(in.q, k3, in.v, in.f); },
                          "bla: gsa k must have the shape of q [2, 5, 2, 4]; got [2, 5, 2, 3]");
  expect_invalid_argument([&] { bla::ops::gated_slot_attention(in.q, in.k, in.v.narrow(2, 0, 1), in.f); },
                          "bla: gsa v must be (batch, seq, heads, value_dim) with batch, seq, heads of q "
                          "[2, 5, 2, 4]; got [2, 5, 1, 3]");
  expect_invalid_argument([&] { bla::ops::gated_slot_attention_reference(in.q, in.k, in.v, in.f.narrow(1, 0, 3)); },
                          "bla: gsa f must be (batch, seq, heads, slots) with batch, seq, heads of q "
                          "[2, 5, 2, 4]; got [2, 3, 2, 6]");
  expect_invalid_argument([&] { bla::ops::gated_slot_attention(in.q, in.k, in.v, in.f.narrow(3, 0, 0)); },
                          "bla: gsa f must have at least one slot; got shape [2, 5, 2, 0]");
  expect_invalid_argument([&] { bla::ops::gated_slot_attention(in.q, in.k, in.v, in.f.to(torch::kFloat32)); },
                          "bla: gsa q, k, v and f must share one dtype; got Double, Double, Double, Float");

  auto wrong_slots = bla::ops::gsa_initial_state(2, 2, 5, 4, 3, torch::kFloat64);
  expect_invalid_argument([&] { bla::ops::gated_slot_attention_with_state(in.q, in.k, in.v, in.f, wrong_slots); },
                          "bla: gsa state keys must have shape (batch, heads, slots, key_dim) = [2, 2, 6, 4]; got "
                          "[2, 2, 5, 4]; make it with gsa_initial_state");
  auto wrong_values = bla::ops::gsa_initial_state(2, 2, 6, 4, 2, torch::kFloat64);
  expect_invalid_argument(
      [&] {
        bla::ops::gsa_decode_step(in.q.select(1, 0), in.k.select(1, 0), in.v.select(1, 0), in.f.select(1, 0),
                                  wrong_values);
      },
      "bla: gsa state values must have shape (batch, heads, slots, value_dim) = [2, 2, 6, 3]; "
      "got [2, 2, 6, 2]; make it with gsa_initial_state");
  auto state = bla::ops::gsa_initial_state(2, 2, 6, 4, 3, torch::kFloat64);
  expect_invalid_argument([&] { bla::ops::gsa_decode_step(in.q, in.k, in.v, in.f, state); },
                          "bla: gsa decode q must be 3-D (batch, heads, key_dim); got shape [2, 5, 2, 4]");
  expect_invalid_argument(
      [&] { bla::ops::gsa_decode_step(in.q.select(1, 0), in.k.select(1, 0), in.v.select(1, 0), in.f, state); },
      "bla: gsa decode f must be (batch, heads, slots) with batch, heads of q [2, 2, 4]; got "
      "[2, 5, 2, 6]");
  EXPECT_EQ(state.position, 0);
}

}  // namespace
