// The mamba2 op (src/bla/ops/mamba2/): the chunked SSD form and the decode
// step held to the token-loop reference (docs/mixers.md, "Mamba2-like
// (SSD)"), gradients to central differences, and float32 to float64 on a
// long sequence with strong decays.
#include "bla/ops/mamba2/mamba2.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "support/finite_difference.h"

#include <stdexcept>
#include <string>
#include <vector>
#include "support/tensor_checks.h"

using bla::testing::max_abs_diff;
using bla::testing::expect_invalid_argument;

namespace bla::ops {
namespace {

struct SsdInputs {
  at::Tensor x, dt, A, Bm, Cm, D;
};

struct SsdShape {
  int64_t batch, seq, heads, head_dim, groups, d_state, chunk;
};

std::string describe(const SsdShape& s) {
  return "B=" + std::to_string(s.batch) + " T=" + std::to_string(s.seq) + " H=" + std::to_string(s.heads) +
         " P=" + std::to_string(s.head_dim) + " G=" + std::to_string(s.groups) + " N=" + std::to_string(s.d_state) +
         " chunk=" + std::to_string(s.chunk);
}

// Mamba2's ranges: dt log-uniform in [dt_min, dt_max], A = -uniform[a_min, a_max].
SsdInputs make_inputs(const SsdShape& s, at::ScalarType dtype, uint64_t seed, double dt_min = 0.001,
                      double dt_max = 0.1, double a_min = 1.0, double a_max = 16.0) {
  torch::manual_seed(seed);
  auto o = torch::TensorOptions().dtype(dtype);
  SsdInputs in;
  in.x = torch::randn({s.batch, s.seq, s.heads, s.head_dim}, o);
  auto log_dt = torch::rand({s.batch, s.seq, s.heads}, o) * (std::log(dt_max) - std::log(dt_min)) + std::log(dt_min);
  in.dt = log_dt.exp();
  in.A = -(torch::rand({s.heads}, o) * (a_max - a_min) + a_min);
  in.Bm = torch::randn({s.batch, s.seq, s.groups, s.d_state}, o);
  in.Cm = torch::randn({s.batch, s.seq, s.groups, s.d_state}, o);
  in.D = torch::randn({s.heads}, o);
  return in;
}

const std::vector<SsdShape> kShapes = {
    {1, 8, 2, 3, 1, 4, 4},    // chunk divides T
    {2, 13, 4, 2, 2, 3, 5},   // chunk does not divide T, two groups
    {2, 7, 2, 2, 2, 2, 16},   // chunk longer than T
    {1, 9, 3, 2, 1, 2, 1},    // chunk 1: only the inter-chunk path
    {2, 20, 4, 3, 2, 5, 6},   // several chunks, padded last chunk
    {1, 1, 1, 1, 1, 1, 64},   // one token
};

// Large dt (up to 2) and A (up to -16) give decays down to exp(-32) per step,
// so both the decaying and the carried terms are exercised.
TEST(Mamba2Op, ChunkedMatchesReference) {
  for (const auto& s : kShapes) {
    for (double dt_max : {0.1, 2.0}) {
      auto in = make_inputs(s, at::kDouble, 1, 0.001, dt_max);
      for (bool with_d : {false, true}) {
        auto D = with_d ? in.D : at::Tensor();
        auto expected = selective_state_space_reference(in.x, in.dt, in.A, in.Bm, in.Cm, D);
        auto got = selective_state_space(in.x, in.dt, in.A, in.Bm, in.Cm, D, SsdOptions{s.chunk});
        ASSERT_EQ(got.sizes(), in.x.sizes()) << describe(s);
        EXPECT_LT(max_abs_diff(got, expected), 1e-10) << describe(s) << " dt_max=" << dt_max << " D=" << with_d;
      }
    }
  }
}

TEST(Mamba2Op, ReferenceFollowsTheRecurrenceByHand) {
  // One head, N = 1, P = 1: h_t = exp(dt_t a) h_{t-1} + dt_t b_t x_t, y_t = c_t h_t + d x_t.
  auto o = torch::TensorOptions().dtype(at::kDouble);
  auto x = torch::tensor({1.0, -2.0, 0.5}, o).view({1, 3, 1, 1});
  auto dt = torch::tensor({0.5, 0.25, 1.0}, o).view({1, 3, 1});
  auto A = torch::tensor({-2.0}, o);
  auto Bm = torch::tensor({3.0, 1.0, -1.0}, o).view({1, 3, 1, 1});
  auto Cm = torch::tensor({2.0, -1.0, 4.0}, o).view({1, 3, 1, 1});
  auto D = torch::tensor({0.5}, o);
  double h = 0;
  std::vector<double> expected;
  const double xs[] = {1.0, -2.0, 0.5}, dts[] = {0.5, 0.25, 1.0}, bs[] = {3.0, 1.0, -1.0}, cs[] = {2.0, -1.0, 4.0};
  for (int t = 0; t < 3; ++t) {
    h = std::exp(dts[t] * -2.0) * h + dts[t] * bs[t] * xs[t];
    expected.push_back(cs[t] * h + 0.5 * xs[t]);
  }
  auto got = selective_state_space_reference(x, dt, A, Bm, Cm, D).view({3});
  auto chunked = selective_state_space(x, dt, A, Bm, Cm, D, SsdOptions{2}).view({3});
  for (int t = 0; t < 3; ++t) {
    EXPECT_NEAR(got[t].item<double>(), expected[t], 1e-12) << "t=" << t;
    EXPECT_NEAR(chunked[t].item<double>(), expected[t], 1e-12) << "t=" << t;
  }
}

TEST(Mamba2Op, DecodeMatchesReference) {
  for (const auto& s : kShapes) {
    auto in = make_inputs(s, at::kDouble, 2, 0.001, 1.0);
    auto expected = selective_state_space_reference(in.x, in.dt, in.A, in.Bm, in.Cm, in.D);
    auto state = ssd_initial_state(s.batch, s.heads, s.d_state, s.head_dim, in.x.options());
    std::vector<at::Tensor> ys;
    for (int64_t t = 0; t < s.seq; ++t) {
      ys.push_back(ssd_decode_step(in.x.select(1, t), in.dt.select(1, t), in.A, in.Bm.select(1, t),
                                   in.Cm.select(1, t), in.D, state));
    }
    EXPECT_EQ(state.position, s.seq);
    EXPECT_LT(max_abs_diff(at::stack(ys, 1), expected), 1e-10) << describe(s);
  }
}

TEST(Mamba2Op, PrefillThenDecodeContinuesExactly) {
  const SsdShape s{2, 23, 4, 3, 2, 4, 4};
  auto in = make_inputs(s, at::kDouble, 3, 0.001, 1.0);
  auto expected = selective_state_space_reference(in.x, in.dt, in.A, in.Bm, in.Cm, in.D);
  auto part = [&](const at::Tensor& t, int64_t from, int64_t len) { return t.narrow(1, from, len); };

  // 10 tokens prefilled, 7 more through the chunked form with the carried state, 6 decoded.
  auto state = ssd_initial_state(s.batch, s.heads, s.d_state, s.head_dim, in.x.options());
  std::vector<at::Tensor> pieces;
  int64_t at_token = 0;
  for (int64_t len : {10, 7}) {
    pieces.push_back(selective_state_space_with_state(part(in.x, at_token, len), part(in.dt, at_token, len), in.A,
                                                      part(in.Bm, at_token, len), part(in.Cm, at_token, len), in.D,
                                                      SsdOptions{s.chunk}, state));
    at_token += len;
    EXPECT_EQ(state.position, at_token);
  }
  for (; at_token < s.seq; ++at_token) {
    pieces.push_back(ssd_decode_step(in.x.select(1, at_token), in.dt.select(1, at_token), in.A,
                                     in.Bm.select(1, at_token), in.Cm.select(1, at_token), in.D, state)
                         .unsqueeze(1));
  }
  EXPECT_EQ(state.position, s.seq);
  EXPECT_LT(max_abs_diff(at::cat(pieces, 1), expected), 1e-10);

  // The state the chunked form leaves equals the decode steps' state.
  auto chunked_state = ssd_initial_state(s.batch, s.heads, s.d_state, s.head_dim, in.x.options());
  selective_state_space_with_state(in.x, in.dt, in.A, in.Bm, in.Cm, in.D, SsdOptions{s.chunk}, chunked_state);
  EXPECT_LT(max_abs_diff(chunked_state.state, state.state), 1e-10);
}

// Gradients of every input, chunked form with 3 chunks (the last padded) and two groups.
TEST(Mamba2Op, ChunkedGradientsMatchFiniteDifferences) {
  const SsdShape s{1, 5, 2, 2, 2, 3, 2};
  auto in = make_inputs(s, at::kDouble, 4, 0.05, 1.0, 0.5, 2.0);
  auto f = [&](const std::vector<at::Tensor>& v) {
    return selective_state_space(v[0], v[1], v[2], v[3], v[4], v[5], SsdOptions{s.chunk});
  };
  EXPECT_TRUE(bla::testing::gradients_match(f, {in.x, in.dt, in.A, in.Bm, in.Cm, in.D}));
}

// Through the carried state too: outputs and the final state against the
// inputs and the initial state.
TEST(Mamba2Op, WithStateGradientsMatchFiniteDifferences) {
  const SsdShape s{1, 4, 2, 2, 1, 2, 3};
  auto in = make_inputs(s, at::kDouble, 5, 0.05, 1.0, 0.5, 2.0);
  torch::manual_seed(50);
  auto h0 = torch::randn({s.batch, s.heads, s.d_state, s.head_dim}, torch::kDouble);
  auto f = [&](const std::vector<at::Tensor>& v) {
    SsdState state{v[3], 0};
    auto y = selective_state_space_with_state(v[0], v[1], v[2], in.Bm, in.Cm, in.D, SsdOptions{s.chunk}, state);
    return at::cat({y.reshape({-1}), state.state.reshape({-1})});
  };
  EXPECT_TRUE(bla::testing::gradients_match(f, {in.x, in.dt, in.A, h0}));
}

// Strong decays (dt up to 1, A down to -16: exp(-16) per step at worst) on
// some heads and slow ones (A = -0.01, dt ~ 0.01) on others, so state carried
// across all 64 chunks matters. float32 must stay finite and close
// (measured: 7e-6 relative on the A = -16 head, 3e-7 on the slow ones).
TEST(Mamba2Op, LongSequenceFloat32MatchesFloat64) {
  const SsdShape s{1, 4096, 4, 4, 2, 8, 64};
  auto in = make_inputs(s, at::kDouble, 6, 0.01, 1.0, 1.0, 16.0);
  in.A = torch::tensor({-16.0, -4.0, -0.01, -0.001}, torch::kDouble);
  in.dt.select(2, 2).fill_(0.01);
  in.dt.select(2, 3).fill_(0.02);
  auto expected = selective_state_space_reference(in.x, in.dt, in.A, in.Bm, in.Cm, in.D);
  auto dt32 = in.dt.to(at::kFloat).requires_grad_(true);
  auto A32 = in.A.to(at::kFloat).requires_grad_(true);
  auto got = selective_state_space(in.x.to(at::kFloat), dt32, A32, in.Bm.to(at::kFloat), in.Cm.to(at::kFloat),
                                   in.D.to(at::kFloat), SsdOptions{64});
  ASSERT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_TRUE(torch::isfinite(got).all().item<bool>());
  got.sum().backward();
  EXPECT_TRUE(torch::isfinite(dt32.grad()).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(A32.grad()).all().item<bool>());
  for (int64_t h = 0; h < s.heads; ++h) {
    auto ref = expected.select(2, h);
    const double error = max_abs_diff(got.select(2, h), ref) / ref.abs().max().item<double>();
    EXPECT_LT(error, 1e-4) << "head " << h;
  }
  // The slow head carries information across chunks: restarting from h = 0
  // at token 64 (the second chunk) changes its outputs there.
  auto restarted = selective_state_space(in.x.narrow(1, 64, 64), in.dt.narrow(1, 64, 64), in.A,
                                         in.Bm.narrow(1, 64, 64), in.Cm.narrow(1, 64, 64), in.D);
  EXPECT_GT(max_abs_diff(restarted.select(2, 3), expected.narrow(1, 64, 64).select(2, 3)), 1e-2);
}

TEST(Mamba2Op, RejectsBadOptionsAndShapes) {
  const SsdShape s{1, 6, 3, 2, 1, 2, 4};
  auto in = make_inputs(s, at::kDouble, 7);
  expect_invalid_argument([&] { selective_state_space(in.x, in.dt, in.A, in.Bm, in.Cm, in.D, SsdOptions{0}); },
                          "bla: ssd chunk (0) must be >= 1; use a positive chunk length such as 64");
  auto two_groups = torch::randn({1, 6, 2, 2}, torch::kDouble);
  expect_invalid_argument(
      [&] { selective_state_space(in.x, in.dt, in.A, two_groups, two_groups, in.D); },
      "bla: ssd heads (3) must be divisible by groups (2); set ngroups to a divisor of the head count");
  expect_invalid_argument([&] { selective_state_space(in.x, in.dt.narrow(1, 0, 5), in.A, in.Bm, in.Cm, in.D); },
                          "bla: ssd dt must be (batch, seq, heads) = [1, 6, 3]; got [1, 5, 3]");
  expect_invalid_argument([&] { selective_state_space_reference(in.x.select(1, 0), in.dt, in.A, in.Bm, in.Cm, in.D); },
                          "bla: ssd x must be (batch, seq, heads, head_dim); got [1, 3, 2]");
  expect_invalid_argument([&] { selective_state_space(in.x, in.dt, in.A, in.Bm, in.Cm, in.A.narrow(0, 0, 2)); },
                          "bla: ssd D must be (heads) = [3]; got [2]");
  auto wrong_state = ssd_initial_state(1, 3, 2, 5, in.x.options());
  expect_invalid_argument(
      [&] {
        ssd_decode_step(in.x.select(1, 0), in.dt.select(1, 0), in.A, in.Bm.select(1, 0), in.Cm.select(1, 0), in.D,
                        wrong_state);
      },
      "bla: ssd state must be (batch, heads, d_state, head_dim) = [1, 3, 2, 2]; got [1, 3, 2, 5]; create it with "
      "ssd_initial_state");
}

}  // namespace
}  // namespace bla::ops
