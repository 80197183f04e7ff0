// gated_recurrence_backward (src/bla/ops/gla/backward.h): the input
// gradients of the gated recurrence from three forward passes, held to
// autograd through the chunked form in float64, on both decay axes, with a
// chunk that does not divide T, T shorter than a chunk, T = 1, Dk != Dv, a
// scale, and strong decays; and the forward calls it makes (no graph). Then
// GatedRecurrenceFunction, the autograd Function the CUDA path wraps around
// the kernels, here around the LibTorch form: the same gradients, and a final
// state without one; and passes that share chunk states (the forward's with
// the dq pass, the dk pass's with the dv pass), as the kernels' do.
#include "bla/ops/gla/backward.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "bla/ops/gla/gla.h"
#include "bla/ops/gla/internal.h"
#include "support/tensor_checks.h"

using bla::ops::DecayAxis;
using bla::testing::max_abs_diff;

namespace {

struct Case {
  int64_t B, H, T, Dk, Dv, chunk;
  double g_low;  // log-decays uniform in [g_low, -0.01]
};

const std::vector<Case> kCases = {
    {2, 2, 37, 5, 3, 8, -1.0},  {1, 2, 13, 4, 6, 64, -0.5},  {2, 1, 1, 3, 4, 16, -0.3},
    {1, 3, 64, 6, 6, 16, -3.0}, {1, 1, 50, 4, 5, 16, -20.0}, {1, 2, 150, 4, 3, 32, -0.5},
};

// The chunked form as the forward the backward calls.
at::Tensor chunked_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                           DecayAxis axis, double scale, int64_t chunk) {
  return bla::ops::chunked_gated_recurrence(q, k, v, g, axis, at::Tensor(), chunk, bla::ops::gla_subchunk(chunk), scale)
      .output;
}

// A case's inputs (float64 leaves), its output through the chunked form and
// an upstream gradient, with autograd's input gradients in the leaves' grad.
struct Problem {
  at::Tensor q, k, v, g, out, grad_out;
};
Problem autograd_problem(const Case& c, DecayAxis axis, double scale, uint64_t seed) {
  torch::manual_seed(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const int64_t Dg = axis == DecayAxis::Key ? c.Dk : c.Dv;
  Problem p;
  p.q = torch::randn({c.B, c.H, c.T, c.Dk}, f64).requires_grad_(true);
  p.k = torch::randn({c.B, c.H, c.T, c.Dk}, f64).requires_grad_(true);
  p.v = torch::randn({c.B, c.H, c.T, c.Dv}, f64).requires_grad_(true);
  p.g = (torch::rand({c.B, c.H, c.T, Dg}, f64) * (c.g_low + 0.01) - 0.01).requires_grad_(true);
  p.out = chunked_forward(p.q, p.k, p.v, p.g, axis, scale, c.chunk);
  p.grad_out = torch::randn_like(p.out);
  p.out.backward(p.grad_out);
  return p;
}

// The backward's gradients against autograd's, float64, within 1e-10 of each one's size.
void expect_autograds_gradients(const bla::ops::GatedRecurrenceGrads& grads, const Problem& p,
                                const std::string& what) {
  const std::vector<std::pair<at::Tensor, at::Tensor>> pairs = {
      {grads.dq, p.q.grad()}, {grads.dk, p.k.grad()}, {grads.dv, p.v.grad()}, {grads.dg, p.g.grad()}};
  const char* names[] = {"dq", "dk", "dv", "dg"};
  for (size_t i = 0; i < pairs.size(); ++i) {
    ASSERT_EQ(pairs[i].first.sizes(), pairs[i].second.sizes()) << names[i];
    EXPECT_EQ(pairs[i].first.scalar_type(), torch::kFloat64) << names[i];
    const double size = pairs[i].second.abs().max().item<double>();
    EXPECT_LT(max_abs_diff(pairs[i].first, pairs[i].second), 1e-10 * (1.0 + size)) << names[i] << " " << what;
  }
}

std::string describe(const Case& c, DecayAxis axis) {
  return std::string("axis ") + (axis == DecayAxis::Key ? "key" : "value") + " T=" + std::to_string(c.T) +
         " chunk=" + std::to_string(c.chunk) + " g_low=" + std::to_string(c.g_low);
}

void check_case(const Case& c, DecayAxis axis) {
  const double scale = 0.7;
  const Problem p = autograd_problem(c, axis, scale, 11 + c.T + c.Dk);
  const auto &q = p.q, &k = p.k, &v = p.v, &g = p.g, &out = p.out, &grad_out = p.grad_out;

  int calls = 0;
  bla::ops::GatedForward forward;
  forward = [&](const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& fv, const at::Tensor& fg, DecayAxis fa,
                double fs, bool reversed) {
    if (reversed) return bla::ops::reversed_by_flipping(forward, fq, fk, fv, fg, fa, fs);
    ++calls;
    torch::NoGradGuard no_grad;
    return chunked_forward(fq, fk, fv, fg, fa, fs, c.chunk);
  };
  const auto grads = bla::ops::gated_recurrence_backward(forward, q.detach(), k.detach(), v.detach(), g.detach(),
                                                         out.detach(), grad_out, axis, scale);
  EXPECT_EQ(calls, 3);
  expect_autograds_gradients(grads, p, describe(c, axis));
}

}  // namespace

TEST(GlaBackward, KeyAxisGradientsMatchAutogradThroughTheChunkedForm) {
  for (const auto& c : kCases) check_case(c, DecayAxis::Key);
}

TEST(GlaBackward, ValueAxisGradientsMatchAutogradThroughTheChunkedForm) {
  for (const auto& c : kCases) check_case(c, DecayAxis::Value);
}

namespace {

// The LibTorch form as the Function's forward pass (no graph).
struct LibTorchPass {
  static at::Tensor run(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                        DecayAxis axis, double scale, at::Tensor* final_state, bool reversed) {
    if (reversed) {
      const bla::ops::GatedForward forward = [](const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& fv,
                                                const at::Tensor& fg, DecayAxis fa, double fs, bool) {
        return run(fq, fk, fv, fg, fa, fs, nullptr, false);
      };
      return bla::ops::reversed_by_flipping(forward, q, k, v, g, axis, scale);
    }
    torch::NoGradGuard no_grad;
    auto result = bla::ops::gla_internal::chunked_gated_recurrence_libtorch(q, k, v, g, axis, at::Tensor(), 16, 16,
                                                                            scale);
    if (final_state != nullptr) *final_state = result.final_state;
    return result.output;
  }
  static at::Tensor gate_gradient(const at::Tensor& a, const at::Tensor& da, const at::Tensor& c, const at::Tensor& dc,
                                  const at::Tensor& g) {
    return bla::ops::gate_gradient_by_scan(a, da, c, dc, g);
  }
};

}  // namespace

TEST(GlaBackward, TheAutogradFunctionGivesAutogradsGradientsAndAFinalStateWithout) {
  for (const DecayAxis axis : {DecayAxis::Key, DecayAxis::Value}) {
    torch::manual_seed(axis == DecayAxis::Key ? 1 : 2);
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    const int64_t B = 2, H = 2, T = 45, Dk = 5, Dv = 4, Dg = axis == DecayAxis::Key ? Dk : Dv;
    std::vector<at::Tensor> leaves = {torch::randn({B, H, T, Dk}, f64), torch::randn({B, H, T, Dk}, f64),
                                      torch::randn({B, H, T, Dv}, f64), torch::rand({B, H, T, Dg}, f64) * -1.0};
    for (auto& x : leaves) x.requires_grad_(true);
    const auto grad_out = torch::randn({B, H, T, Dv}, f64);
    const double scale = 0.3;

    const auto outputs = bla::ops::GatedRecurrenceFunction<LibTorchPass>::apply(
        leaves[0], leaves[1], leaves[2], leaves[3], axis == DecayAxis::Value, scale);
    EXPECT_FALSE(outputs[1].requires_grad());
    outputs[0].backward(grad_out);
    std::vector<at::Tensor> got;
    for (auto& x : leaves) {
      got.push_back(x.grad().clone());
      x.mutable_grad() = at::Tensor();
    }
    const auto expected = chunked_forward(leaves[0], leaves[1], leaves[2], leaves[3], axis, scale, 16);
    expected.backward(grad_out);
    EXPECT_LT(max_abs_diff(outputs[0], expected), 1e-12);
    const auto state = bla::ops::chunked_gated_recurrence(leaves[0].detach(), leaves[1].detach(), leaves[2].detach(),
                                                          leaves[3].detach(), axis, at::Tensor(), 16, 16, scale)
                           .final_state;
    EXPECT_LT(max_abs_diff(outputs[1], state), 1e-12);
    const char* names[] = {"dq", "dk", "dv", "dg"};
    for (size_t i = 0; i < leaves.size(); ++i)
      EXPECT_LT(max_abs_diff(got[i], leaves[i].grad()), 1e-10 * (1.0 + leaves[i].grad().abs().max().item<double>()))
          << names[i] << (axis == DecayAxis::Key ? " key" : " value");
  }
}

namespace {

constexpr int64_t kShareChunk = 8;  // the chunking of the sharing pass below

// A pass that shares chunk states (backward.h, PassStates), as the kernels'
// does, from the LibTorch form run chunk by chunk from each chunk's entering
// state: the given one where states are given, else the one the chunks
// before it left. Counts the passes that computed states and those that read
// given ones. (LibTorchPass's gate gradient.)
struct ChunkStatesPass : LibTorchPass {
  static inline int computed = 0, given = 0;

  static at::Tensor run(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                        DecayAxis axis, double scale, at::Tensor* final_state, bool reversed,
                        const bla::ops::PassStates& states = {}) {
    torch::NoGradGuard no_grad;
    if (reversed) {  // the inputs flipped in time, the gates moved one token (backward.h)
      const int64_t T = g.size(2);
      const auto moved = at::cat({g.narrow(2, 1, T - 1), at::zeros_like(g.narrow(2, 0, 1))}, 2);
      return run(q.flip({2}), k.flip({2}), v.flip({2}), moved.flip({2}), axis, scale, nullptr, false, states)
          .flip({2});
    }
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dk = q.size(3), Dv = v.size(3);
    const int64_t chunks = (T + kShareChunk - 1) / kShareChunk;
    if (states.given.defined()) {
      EXPECT_EQ(states.given.sizes(), (std::vector<int64_t>{B, H, chunks, Dk, Dv}));
      ++given;
    } else {
      ++computed;
    }
    at::Tensor state = at::zeros({B, H, Dk, Dv}, q.options());
    std::vector<at::Tensor> outputs, entering;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t first = c * kShareChunk, length = std::min(kShareChunk, T - first);
      const auto S = states.given.defined() ? states.given.select(2, c) : state;
      entering.push_back(S);
      auto r = bla::ops::chunked_gated_recurrence(q.narrow(2, first, length), k.narrow(2, first, length),
                                                  v.narrow(2, first, length), g.narrow(2, first, length), axis, S,
                                                  kShareChunk, kShareChunk, scale);
      outputs.push_back(r.output);
      state = r.final_state;
    }
    if (final_state != nullptr) *final_state = state;
    if (states.computed != nullptr && !states.given.defined()) *states.computed = at::stack(entering, 2);
    return at::cat(outputs, 2);
  }
};

}  // namespace

// The backward whose passes share states: the dq pass reads the forward's
// transposed, the dv pass the dk pass's; two of its three passes compute
// none, and the gradients are autograd's through the chunked form (float64;
// Dk != Dv, so a state handed over untransposed would not even fit).
TEST(GlaBackward, PassesSharingChunkStatesGiveAutogradsGradients) {
  for (const DecayAxis axis : {DecayAxis::Key, DecayAxis::Value}) {
    for (const Case& c :
         {Case{2, 2, 37, 5, 3, 16, -1.0}, Case{1, 1, 6, 3, 4, 16, -0.5}, Case{1, 2, 24, 4, 6, 16, -5.0}}) {
      const double scale = 0.6;
      const Problem p = autograd_problem(c, axis, scale, 31 + c.T);
      const auto q = p.q.detach(), k = p.k.detach(), v = p.v.detach(), g = p.g.detach();
      at::Tensor forward_states;
      const auto own = ChunkStatesPass::run(q, k, v, g, axis, scale, nullptr, false, {at::Tensor(), &forward_states});
      EXPECT_LT(max_abs_diff(own, p.out), 1e-12);
      ChunkStatesPass::computed = ChunkStatesPass::given = 0;
      const bla::ops::SharingGatedForward pass = [](const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& fv,
                                                    const at::Tensor& fg, DecayAxis fa, double fs, bool reversed,
                                                    const bla::ops::PassStates& states) {
        return ChunkStatesPass::run(fq, fk, fv, fg, fa, fs, nullptr, reversed, states);
      };
      const auto grads = bla::ops::gated_recurrence_backward(pass, q, k, v, g, p.out.detach(), p.grad_out, axis, scale,
                                                             forward_states);
      EXPECT_EQ(ChunkStatesPass::computed, 1);  // the dk pass
      EXPECT_EQ(ChunkStatesPass::given, 2);     // the dq and dv passes
      expect_autograds_gradients(grads, p, describe(c, axis));
    }
  }
}

// Through the autograd Function: a pass that takes PassStates has its
// forward keep its chunk states for the backward, so of the four passes two
// compute states; the gradients are autograd's through the chunked form.
TEST(GlaBackward, TheAutogradFunctionKeepsTheForwardsStatesForTheBackward) {
  static_assert(bla::ops::gla_internal::SharesStates<ChunkStatesPass>::value);
  static_assert(!bla::ops::gla_internal::SharesStates<LibTorchPass>::value);
  for (const DecayAxis axis : {DecayAxis::Key, DecayAxis::Value}) {
    torch::manual_seed(axis == DecayAxis::Key ? 5 : 6);
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    const int64_t B = 1, H = 2, T = 29, Dk = 3, Dv = 5, Dg = axis == DecayAxis::Key ? Dk : Dv;
    std::vector<at::Tensor> leaves = {torch::randn({B, H, T, Dk}, f64), torch::randn({B, H, T, Dk}, f64),
                                      torch::randn({B, H, T, Dv}, f64), torch::rand({B, H, T, Dg}, f64) * -1.0};
    for (auto& x : leaves) x.requires_grad_(true);
    const auto grad_out = torch::randn({B, H, T, Dv}, f64);
    ChunkStatesPass::computed = ChunkStatesPass::given = 0;
    const auto outputs = bla::ops::GatedRecurrenceFunction<ChunkStatesPass>::apply(
        leaves[0], leaves[1], leaves[2], leaves[3], axis == DecayAxis::Value, 0.4);
    outputs[0].backward(grad_out);
    EXPECT_EQ(ChunkStatesPass::computed, 2);  // the forward and the dk pass
    EXPECT_EQ(ChunkStatesPass::given, 2);     // the dq and dv passes
    std::vector<at::Tensor> got;
    for (auto& x : leaves) {
      got.push_back(x.grad().clone());
      x.mutable_grad() = at::Tensor();
    }
    chunked_forward(leaves[0], leaves[1], leaves[2], leaves[3], axis, 0.4, 16).backward(grad_out);
    const char* names[] = {"dq", "dk", "dv", "dg"};
    for (size_t i = 0; i < leaves.size(); ++i)
      EXPECT_LT(max_abs_diff(got[i], leaves[i].grad()), 1e-10 * (1.0 + leaves[i].grad().abs().max().item<double>()))
          << names[i] << (axis == DecayAxis::Key ? " key" : " value");
  }
}
