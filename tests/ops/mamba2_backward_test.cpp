// ssd_backward (src/bla/ops/mamba2/backward.h): the SSD recurrence's input
// gradients from three forward passes, held to autograd through the chunked
// form in float64, with groups (G = 1, G < H, G = H), a chunk that does not
// divide T, T shorter than a chunk, T = 1, N != P, strong decays and T past
// one block of the reverse running sum (scan.h); and the
// forward calls it makes. Then SsdFunction, the autograd Function the CUDA
// path wraps around the kernels, here around the LibTorch form and composed
// as dispatch.cpp composes it (log decay dt A, key scale dt, the D skip):
// the output and every input gradient of selective_state_space.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "bla/ops/mamba2/backward.h"
#include "bla/ops/mamba2/internal.h"
#include "bla/ops/mamba2/mamba2.h"
#include "support/tensor_checks.h"

using bla::testing::max_abs_diff;

namespace {

struct Case {
  int64_t B, T, H, P, G, N, chunk;
  double l_low;  // log decays uniform in [l_low, -0.01]
};

const std::vector<Case> kCases = {
    {2, 37, 2, 3, 1, 5, 8, -1.0},  {1, 13, 4, 6, 2, 4, 64, -0.5},  {2, 1, 2, 4, 2, 3, 16, -0.3},
    {1, 64, 3, 6, 3, 6, 16, -3.0}, {1, 50, 2, 5, 1, 4, 16, -20.0}, {1, 150, 2, 4, 1, 3, 32, -0.5},
};

// The chunked form from h = 0 as the forward the backward calls.
at::Tensor chunked_forward(const at::Tensor& x, const at::Tensor& l, const at::Tensor& s, const at::Tensor& Bm,
                           const at::Tensor& Cm, int64_t chunk) {
  return bla::ops::mamba2_internal::ssd_chunked(x, l, s, Bm, Cm, chunk, at::Tensor()).first;
}

void expect_close(const at::Tensor& got, const at::Tensor& want, const char* name, const Case& c) {
  ASSERT_EQ(got.sizes(), want.sizes()) << name;
  EXPECT_EQ(got.scalar_type(), torch::kFloat64) << name;
  const double size = want.abs().max().item<double>();
  EXPECT_LT(max_abs_diff(got, want), 1e-10 * (1.0 + size))
      << name << " T=" << c.T << " H=" << c.H << " G=" << c.G << " chunk=" << c.chunk << " l_low=" << c.l_low;
}

}  // namespace

TEST(Mamba2Backward, GradientsFromThreeForwardPassesMatchAutogradThroughTheChunkedForm) {
  for (const auto& c : kCases) {
    torch::manual_seed(5 + c.T + c.N);
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    auto x = torch::randn({c.B, c.T, c.H, c.P}, f64).requires_grad_(true);
    auto l = (torch::rand({c.B, c.T, c.H}, f64) * (c.l_low + 0.01) - 0.01).requires_grad_(true);
    auto s = (torch::rand({c.B, c.T, c.H}, f64) + 0.1).requires_grad_(true);
    auto Bm = torch::randn({c.B, c.T, c.G, c.N}, f64).requires_grad_(true);
    auto Cm = torch::randn({c.B, c.T, c.G, c.N}, f64).requires_grad_(true);
    const auto y = chunked_forward(x, l, s, Bm, Cm, c.chunk);
    const auto dy = torch::randn_like(y);
    y.backward(dy);

    int calls = 0;
    const bla::ops::SsdForwardPass forward = [&](const at::Tensor& fx, const at::Tensor& fl, const at::Tensor& fs,
                                                 const at::Tensor& fB, const at::Tensor& fC, bool float_output) {
      ++calls;
      EXPECT_TRUE(float_output);
      EXPECT_FALSE(fs.defined());  // the gradient passes carry the key scale in their operands
      torch::NoGradGuard no_grad;
      return chunked_forward(fx, fl, fs, fB, fC, c.chunk);
    };
    const auto g = bla::ops::ssd_backward(forward, x.detach(), l.detach(), s.detach(), Bm.detach(), Cm.detach(), dy);
    EXPECT_EQ(calls, 3);
    expect_close(g.dx, x.grad(), "dx", c);
    expect_close(g.dlog_decay, l.grad(), "dlog_decay", c);
    expect_close(g.dkey_scale, s.grad(), "dkey_scale", c);
    expect_close(g.dBm, Bm.grad(), "dBm", c);
    expect_close(g.dCm, Cm.grad(), "dCm", c);
  }
}

namespace {

// The LibTorch form as the Function's forward pass (no graph).
struct LibTorchPass {
  static at::Tensor run(const at::Tensor& x, const at::Tensor& l, const at::Tensor& s, const at::Tensor& Bm,
                        const at::Tensor& Cm, bool) {
    torch::NoGradGuard no_grad;
    return chunked_forward(x, l, s, Bm, Cm, 16);
  }
};

}  // namespace

TEST(Mamba2Backward, TheAutogradFunctionComposedAsTheCudaPathGivesTheOpsOutputAndGradients) {
  namespace ops = bla::ops;
  torch::manual_seed(3);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const int64_t B = 2, T = 45, H = 4, P = 3, G = 2, N = 5;
  std::vector<at::Tensor> leaves = {torch::randn({B, T, H, P}, f64),  torch::softplus(torch::randn({B, T, H}, f64)),
                                    -torch::rand({H}, f64) * 4 - 0.5, torch::randn({B, T, G, N}, f64),
                                    torch::randn({B, T, G, N}, f64),  torch::randn({H}, f64)};
  for (auto& t : leaves) t.requires_grad_(true);
  const auto &x = leaves[0], &dt = leaves[1], &A = leaves[2], &Bm = leaves[3], &Cm = leaves[4], &D = leaves[5];
  const auto dy = torch::randn({B, T, H, P}, f64);

  const auto decay = ops::mamba2_internal::ssd_decay(dt, A);
  const auto y = ops::mamba2_internal::add_skip(
      ops::SsdFunction<LibTorchPass>::apply(x, decay.log_decay, decay.key_scale, Bm, Cm), x, D);
  y.backward(dy);
  std::vector<at::Tensor> got;
  for (auto& t : leaves) {
    got.push_back(t.grad().clone());
    t.mutable_grad() = at::Tensor();
  }
  const auto expected = ops::selective_state_space(x, dt, A, Bm, Cm, D, ops::SsdOptions{16});
  expected.backward(dy);
  EXPECT_LT(max_abs_diff(y, expected), 1e-12);
  EXPECT_LT(max_abs_diff(y, ops::selective_state_space_reference(x, dt, A, Bm, Cm, D)), 1e-10);
  const char* names[] = {"dx", "ddt", "dA", "dBm", "dCm", "dD"};
  for (size_t i = 0; i < leaves.size(); ++i)
    EXPECT_LT(max_abs_diff(got[i], leaves[i].grad()), 1e-10 * (1.0 + leaves[i].grad().abs().max().item<double>()))
        << names[i];
}
