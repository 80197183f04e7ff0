// The model kernels (kernels/model_*.cu: RMSNorm, an ensemble's RMSNorm,
// SwiGLU's activation, rotary embedding, the short convolution, the batched
// head's cross-entropy) against their definitions computed by LibTorch in
// float64 on the upcast inputs: outputs and every input gradient, on fresh
// random inputs, bf16 and float32, odd shapes, unaligned (single-element)
// paths. Output buffers are filled with NaN first, so an element never
// written fails. Ensembles' kernels also against solo calls on each member
// (the same bits). Then the dispatched modules against the LibTorch forms
// (what BLA_KERNELS=0 runs), and one forward+backward through three kernels
// captured in a CUDA graph and replayed on new inputs, against eager.
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bla/compat.h"
#include "bla/mixers/common/heads.h"
#include "bla/mixers/common/short_conv.h"
#include "bla/model/head_loss.h"
#include "bla/model/lm.h"
#include "bla_kernels/model.h"
#include "support/tensor_checks.h"

namespace {

using bla::testing::relative_error;

struct Mode {
  const char* name;
  at::ScalarType dtype;
  double tolerance;  // on ||x - ref|| / ||ref||
};
const Mode kModes[] = {{"f32", at::kFloat, 1e-5}, {"bf16", at::kBFloat16, 1e-2}};

torch::TensorOptions cuda_f32() { return torch::TensorOptions().device(torch::kCUDA).dtype(at::kFloat); }

at::Tensor randn(at::IntArrayRef sizes, at::ScalarType dtype, double scale = 1.0) {
  return (torch::randn(sizes, cuda_f32()) * scale).to(dtype);
}

// A contiguous tensor whose data starts 1 element past an aligned allocation:
// the kernels must take their single-element paths on it.
at::Tensor unaligned_copy(const at::Tensor& t) {
  auto storage = torch::empty({t.numel() + 1}, t.options());
  auto view = storage.narrow(0, 1, t.numel()).view(t.sizes());
  view.copy_(t);
  return view;
}

void expect_close(const std::string& what, const at::Tensor& x, const at::Tensor& ref, double tolerance) {
  ASSERT_TRUE(x.defined()) << what;
  ASSERT_EQ(x.sizes(), ref.sizes()) << what;
  const int64_t bad = x.isfinite().logical_not().sum().item<int64_t>();
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << x.numel() << " elements not finite (unwritten?)";
  const double err = relative_error(x, ref);
  EXPECT_LT(err, tolerance) << what << ": relative error " << err;
  std::printf("    %-28s rel err %.3e\n", what.c_str(), err);
}

at::Tensor poisoned(at::IntArrayRef sizes, at::ScalarType dtype) {
  return torch::full(sizes, std::numeric_limits<float>::quiet_NaN(),
                     torch::TensorOptions().device(torch::kCUDA).dtype(dtype));
}

#define SKIP_WITHOUT_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

// ------------------------------------------------------------------ RMSNorm

struct NormCase {
  const char* name;
  int64_t batch, seq, dim;
  bool bf16_weight = false;  // weight in x's dtype (bf16 modes) instead of float32
  bool unaligned = false;
};
const NormCase kNormCases[] = {
    {"one_row_d64", 1, 1, 64},
    {"odd_rows_d100", 3, 37, 100},
    {"d128", 2, 129, 128},
    {"many_rows_d128", 64, 300, 128},  // more rows than the grid's groups hold at once
    {"d768", 2, 300, 768},
    {"d1024_bf16_weight", 1, 257, 1024, true},
    {"odd_d7", 5, 3, 7},
    {"d4096", 1, 33, 4096},
    {"d8192_max", 1, 9, 8192},
    {"unaligned_d768", 1, 65, 768, false, true},
};

class ModelKernelRmsNorm : public ::testing::TestWithParam<std::tuple<NormCase, Mode>> {
 protected:
  void SetUp() override { SKIP_WITHOUT_CUDA(); }
};

TEST_P(ModelKernelRmsNorm, ForwardAndGradientsMatchFloat64) {
  const auto& [c, mode] = GetParam();
  const double eps = 1e-5;
  const auto w_dtype = c.bf16_weight ? mode.dtype : at::kFloat;
  at::Tensor x = randn({c.batch, c.seq, c.dim}, mode.dtype, 1.7);
  at::Tensor w = (1.0 + 0.5 * torch::randn({c.dim}, cuda_f32())).to(w_dtype);
  at::Tensor gy = randn({c.batch, c.seq, c.dim}, mode.dtype);
  if (c.unaligned) {
    x = unaligned_copy(x);
    gy = unaligned_copy(gy);
  }

  // The definition in float64 on the upcast inputs.
  torch::AutoGradMode grad_on(true);
  auto xd = x.detach().to(at::kDouble).requires_grad_(true);
  auto wd = w.detach().to(at::kDouble).requires_grad_(true);
  auto rstd_ref = torch::rsqrt(xd.pow(2).mean(-1) + eps);
  auto y_ref = xd * rstd_ref.unsqueeze(-1) * wd;
  y_ref.backward(gy.to(at::kDouble));

  const int64_t rows = c.batch * c.seq;
  at::Tensor y = poisoned(x.sizes(), mode.dtype), rstd = poisoned({rows}, at::kFloat);
  bla::kernels::rms_norm_forward_out(x, w, eps, y, rstd);
  at::Tensor gx = poisoned(x.sizes(), mode.dtype), gw = poisoned({c.dim}, w_dtype);
  bla::kernels::rms_norm_backward_out(x, w, rstd, gy, gx, gw);
  expect_close("y", y, y_ref.detach(), mode.tolerance);
  expect_close("rstd", rstd, rstd_ref.detach().reshape({rows}), 1e-5);
  expect_close("grad_x", gx, xd.grad(), mode.tolerance);
  expect_close("grad_weight", gw, wd.grad(), mode.tolerance);

  // The weight gradient is summed in a fixed order: the same bits again.
  at::Tensor gx2 = poisoned(x.sizes(), mode.dtype), gw2 = poisoned({c.dim}, w_dtype);
  bla::kernels::rms_norm_backward_out(x, w, rstd, gy, gx2, gw2);
  EXPECT_TRUE(torch::equal(gw, gw2)) << "weight gradient differs between two identical runs";
  EXPECT_TRUE(torch::equal(gx, gx2));

  // The autograd Function runs the same passes (on an input as (un)aligned as x: the
  // vectorised and the scalar loads sum in different orders).
  auto xa = (c.unaligned ? unaligned_copy(x.detach()) : x.detach().clone()).requires_grad_(true);
  auto wa = w.detach().clone().requires_grad_(true);
  auto ya = bla::kernels::rms_norm_autograd(xa, wa, eps);
  ya.backward(gy);
  EXPECT_TRUE(torch::equal(ya, y));
  EXPECT_TRUE(torch::equal(xa.grad(), gx));
  EXPECT_TRUE(torch::equal(wa.grad(), gw));
}

INSTANTIATE_TEST_SUITE_P(Shapes, ModelKernelRmsNorm, ::testing::Combine(::testing::ValuesIn(kNormCases),
                                                                        ::testing::ValuesIn(kModes)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
                         });

// A float32 x with a bf16 output (the input of bf16 products): the bits of the
// float32 output rounded to bf16, and from a bf16 gradient the bits the float32
// kernel gives on that gradient's values; solo and ensemble, vector and
// single-element paths, one warp's rows and wider ones.
TEST(ModelKernelRmsNormBf16Output, IsTheFloat32OutputRoundedAndReadsItsGradientAsIs) {
  SKIP_WITHOUT_CUDA();
  const double eps = 1e-5;
  for (int64_t dim : {128, 100, 768, 7, 4096}) {
    for (bool unaligned : {false, true}) {
      const std::string tag = "dim " + std::to_string(dim) + (unaligned ? " unaligned" : "");
      at::Tensor x = randn({3, 67, dim}, at::kFloat, 1.3);
      if (unaligned) x = unaligned_copy(x);
      const at::Tensor w = 1.0 + 0.5 * torch::randn({dim}, cuda_f32());
      const at::Tensor gy = randn({3, 67, dim}, at::kBFloat16);
      const int64_t rows = 3 * 67;

      at::Tensor y32 = poisoned(x.sizes(), at::kFloat), r32 = poisoned({rows}, at::kFloat);
      bla::kernels::rms_norm_forward_out(x, w, eps, y32, r32);
      at::Tensor y16 = poisoned(x.sizes(), at::kBFloat16), r16 = poisoned({rows}, at::kFloat);
      bla::kernels::rms_norm_forward_out(x, w, eps, y16, r16);
      EXPECT_TRUE(torch::equal(y16, y32.to(at::kBFloat16))) << tag << ": y";
      EXPECT_TRUE(torch::equal(r16, r32)) << tag << ": rstd";

      at::Tensor gx32 = poisoned(x.sizes(), at::kFloat), gw32 = poisoned({dim}, at::kFloat);
      bla::kernels::rms_norm_backward_out(x, w, r32, gy.to(at::kFloat), gx32, gw32);
      at::Tensor gx16 = poisoned(x.sizes(), at::kFloat), gw16 = poisoned({dim}, at::kFloat);
      bla::kernels::rms_norm_backward_out(x, w, r32, gy, gx16, gw16);
      EXPECT_TRUE(torch::equal(gx16, gx32)) << tag << ": grad_x";
      EXPECT_TRUE(torch::equal(gw16, gw32)) << tag << ": grad_weight";

      // Through autograd, solo and as member 1 of 3, on an x as (un)aligned as
      // the raw passes': the word and single-element paths sum in other orders.
      auto xa = (unaligned ? unaligned_copy(x.detach()) : x.detach().clone()).requires_grad_(true);
      auto wa = w.detach().clone().requires_grad_(true);
      auto ya = bla::kernels::rms_norm_autograd(xa, wa, eps, at::kBFloat16);
      ASSERT_EQ(ya.scalar_type(), at::kBFloat16) << tag;
      ya.backward(gy);
      EXPECT_TRUE(torch::equal(ya, y16)) << tag << ": autograd y";
      EXPECT_TRUE(torch::equal(xa.grad(), gx32)) << tag << ": autograd grad_x";
      EXPECT_TRUE(torch::equal(wa.grad(), gw32)) << tag << ": autograd grad_weight";
      if (unaligned) continue;
      auto xm = torch::cat({randn({3, 67, dim}, at::kFloat), x, randn({3, 67, dim}, at::kFloat)}).requires_grad_(true);
      auto wm = torch::stack({w, w, w}).requires_grad_(true);
      auto ym = bla::kernels::rms_norm_members_autograd(xm, wm, eps, at::kBFloat16);
      ym.backward(torch::cat({gy, gy, gy}));
      EXPECT_TRUE(torch::equal(ym.detach().narrow(0, 3, 3), y16)) << tag << ": member y";
      EXPECT_TRUE(torch::equal(xm.grad().narrow(0, 3, 3), gx32)) << tag << ": member grad_x";
      EXPECT_TRUE(torch::equal(wm.grad()[1], gw32)) << tag << ": member grad_weight";
    }
  }
}

TEST(ModelKernelRmsNormBf16Output, RejectsAnyOtherOutputDtype) {
  SKIP_WITHOUT_CUDA();
  const auto x = randn({2, 5, 64}, at::kBFloat16);
  const auto w = torch::ones({64}, cuda_f32());
  try {
    bla::kernels::rms_norm_autograd(x, w, 1e-5, at::kFloat);
    FAIL() << "a float32 output of a bf16 x was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "bla: rms_norm kernel: the output dtype must be x's (BFloat16) or bfloat16 for a float32 x, got Float");
  }
}

// The residual add fused into the norm: s = x + res and y = norm(s), forward
// and every gradient, have the bits of the two ops run apart (the add, then the
// norm kernel), whether s is read on or only y; float32 stream with a bf16 or
// float32 branch, a bf16 stream; bf16 output; solo and ensemble; rows of
// single elements (dim 7). (An unaligned x would take the single-element path
// where the unfused norm's fresh sum takes words: other bits, not compared.)
TEST(ModelKernelRmsNormAfterAdd, HasTheBitsOfTheAddThenTheNorm) {
  SKIP_WITHOUT_CUDA();
  struct Case {
    at::ScalarType x, res, out;
    int64_t dim, members;
  };
  const Case cases[] = {
      {at::kFloat, at::kBFloat16, at::kBFloat16, 128, 0}, {at::kFloat, at::kBFloat16, at::kFloat, 100, 0},
      {at::kFloat, at::kFloat, at::kFloat, 768, 0},       {at::kBFloat16, at::kBFloat16, at::kBFloat16, 128, 0},
      {at::kFloat, at::kBFloat16, at::kBFloat16, 128, 3}, {at::kFloat, at::kBFloat16, at::kBFloat16, 7, 0},
      {at::kFloat, at::kBFloat16, at::kFloat, 4096, 0},
  };
  for (const auto& c : cases) {
    for (bool read_on : {true, false}) {
      const std::string tag = std::string(c10::toString(c.x)) + "+" + c10::toString(c.res) + "->" +
                              c10::toString(c.out) + " dim " + std::to_string(c.dim) + " members " +
                              std::to_string(c.members) +
                              (read_on ? " s read on" : " only y read");
      const int64_t B = c.members > 0 ? 2 * c.members : 3;
      const at::Tensor x0 = randn({B, 41, c.dim}, c.x, 1.5), r0 = randn({B, 41, c.dim}, c.res);
      const at::Tensor w0 = c.members > 0 ? 1.0 + 0.4 * torch::randn({c.members, c.dim}, cuda_f32())
                                          : 1.0 + 0.4 * torch::randn({c.dim}, cuda_f32());
      const at::Tensor gs = randn({B, 41, c.dim}, c.x), gy = randn({B, 41, c.dim}, c.out);
      auto leaf = [](const at::Tensor& t) { return t.detach().clone().requires_grad_(true); };
      auto x1 = leaf(x0), r1 = leaf(r0), w1 = leaf(w0);
      auto [s1, y1] = bla::kernels::rms_norm_after_add_autograd(x1, r1, w1, 1e-5, c.out);
      auto x2 = leaf(x0), r2 = leaf(r0), w2 = leaf(w0);
      auto s2 = x2 + r2;
      auto y2 = c.members > 0 ? bla::kernels::rms_norm_members_autograd(s2, w2, 1e-5, c.out)
                              : bla::kernels::rms_norm_autograd(s2, w2, 1e-5, c.out);
      if (read_on) {
        torch::autograd::backward({s1, y1}, {gs, gy});
        torch::autograd::backward({s2, y2}, {gs, gy});
      } else {
        y1.backward(gy);
        y2.backward(gy);
      }
      EXPECT_TRUE(torch::equal(s1, s2)) << tag << ": s";
      EXPECT_TRUE(torch::equal(y1, y2)) << tag << ": y";
      EXPECT_TRUE(torch::equal(x1.grad(), x2.grad())) << tag << ": grad_x";
      EXPECT_TRUE(torch::equal(r1.grad(), r2.grad())) << tag << ": grad_res";
      EXPECT_EQ(r1.grad().scalar_type(), c.res) << tag;
      EXPECT_TRUE(torch::equal(w1.grad(), w2.grad())) << tag << ": grad_weight";
    }
  }
}

// ------------------------------------------------------------------ SwiGLU

struct SwigluCase {
  const char* name;
  std::vector<int64_t> sizes;
  bool unaligned = false;
};
const SwigluCase kSwigluCases[] = {
    {"odd_count", {3, 37, 100}},
    {"d1024", {2, 5, 1024}},
    {"seven", {1, 1, 7}},
    {"hidden_688", {4, 129, 688}},
    {"unaligned", {2, 33, 64}, true},
};

class ModelKernelSwiglu : public ::testing::TestWithParam<std::tuple<SwigluCase, Mode>> {
 protected:
  void SetUp() override { SKIP_WITHOUT_CUDA(); }
};

TEST_P(ModelKernelSwiglu, ForwardAndGradientsMatchFloat64) {
  const auto& [c, mode] = GetParam();
  at::Tensor g = randn(c.sizes, mode.dtype, 3.0), u = randn(c.sizes, mode.dtype), gh = randn(c.sizes, mode.dtype);
  if (c.unaligned) {
    g = unaligned_copy(g);
    u = unaligned_copy(u);
    gh = unaligned_copy(gh);
  }
  torch::AutoGradMode grad_on(true);
  auto gd = g.detach().to(at::kDouble).requires_grad_(true);
  auto ud = u.detach().to(at::kDouble).requires_grad_(true);
  auto h_ref = gd * torch::sigmoid(gd) * ud;
  h_ref.backward(gh.to(at::kDouble));

  at::Tensor h = poisoned(g.sizes(), mode.dtype);
  bla::kernels::swiglu_forward_out(g, u, h);
  at::Tensor dg = poisoned(g.sizes(), mode.dtype), du = poisoned(g.sizes(), mode.dtype);
  bla::kernels::swiglu_backward_out(g, u, gh, dg, du);
  expect_close("h", h, h_ref.detach(), mode.tolerance);
  expect_close("grad_gate", dg, gd.grad(), mode.tolerance);
  expect_close("grad_up", du, ud.grad(), mode.tolerance);

  auto ga = g.detach().clone().requires_grad_(true), ua = u.detach().clone().requires_grad_(true);
  auto ha = bla::kernels::swiglu_autograd(ga, ua);
  ha.backward(gh);
  EXPECT_TRUE(torch::equal(ha, h));
  EXPECT_TRUE(torch::equal(ga.grad(), dg));
  EXPECT_TRUE(torch::equal(ua.grad(), du));
}

INSTANTIATE_TEST_SUITE_P(Shapes, ModelKernelSwiglu, ::testing::Combine(::testing::ValuesIn(kSwigluCases),
                                                                       ::testing::ValuesIn(kModes)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
                         });

// One joined (..., 2H) product of gate and up: the separate kernel's bits on
// its halves, forward and both halves of the gradient; H in whole 16-byte words
// and not, aligned and not.
TEST(ModelKernelSwigluJoined, HasTheSeparateKernelsBitsOnItsHalves) {
  SKIP_WITHOUT_CUDA();
  for (const auto& mode : kModes) {
    for (int64_t H : {344, 100, 7, 1024}) {
      for (bool unaligned : {false, true}) {
        const std::string tag = std::string(mode.name) + " H " + std::to_string(H) + (unaligned ? " unaligned" : "");
        at::Tensor joined = randn({3, 37, 2 * H}, mode.dtype, 2.0);
        if (unaligned) joined = unaligned_copy(joined);
        const at::Tensor gh = randn({3, 37, H}, mode.dtype);
        auto j = joined.detach().clone();
        if (unaligned) j = unaligned_copy(j);
        j.requires_grad_(true);
        auto h = bla::kernels::swiglu_joined_autograd(j);
        h.backward(gh);
        auto g = joined.narrow(-1, 0, H).contiguous().requires_grad_(true);
        auto u = joined.narrow(-1, H, H).contiguous().requires_grad_(true);
        auto h2 = bla::kernels::swiglu_autograd(g, u);
        h2.backward(gh);
        EXPECT_TRUE(torch::equal(h, h2)) << tag << ": h";
        EXPECT_TRUE(torch::equal(j.grad().narrow(-1, 0, H), g.grad())) << tag << ": grad of the gate half";
        EXPECT_TRUE(torch::equal(j.grad().narrow(-1, H, H), u.grad())) << tag << ": grad of the up half";
      }
    }
  }
}

// ------------------------------------------------------------------ rotary

struct RotaryCase {
  const char* name;
  int64_t batch, seq, heads_q, heads_k, dim, start;
  double base = 10000.0;
  bool unaligned = false;
};
const RotaryCase kRotaryCases[] = {
    {"d64", 2, 100, 3, 3, 64, 0},
    {"decode_t1_late", 3, 1, 4, 4, 128, 8191},
    {"d100_scalar_path", 2, 37, 2, 2, 100, 5},
    {"long_positions", 1, 300, 2, 2, 64, 8000},
    {"kv_heads_differ", 2, 17, 5, 2, 32, 3, 500000.0},
    {"d768", 1, 9, 1, 1, 768, 11},
    {"d2", 1, 13, 2, 2, 2, 0},
    {"unaligned", 1, 21, 2, 2, 64, 7, 10000.0, true},
};

// cos and sin (T, D/2) in float64 of the angles as the LibTorch form (and the
// kernel) define them in float32: inv_freq = base^(-2i/D) rounded to float32,
// angle = float32(start + t) * inv_freq rounded to float32.
std::pair<at::Tensor, at::Tensor> rotary_tables(int64_t seq, int64_t dim, int64_t start, double base) {
  const int64_t half = dim / 2;
  std::vector<double> cos_v(seq * half), sin_v(seq * half);
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = -static_cast<float>(2 * i) / static_cast<float>(dim);
    const float inv_freq = static_cast<float>(std::pow(static_cast<double>(static_cast<float>(base)), exponent));
    for (int64_t t = 0; t < seq; ++t) {
      const float angle = static_cast<float>(start + t) * inv_freq;
      cos_v[t * half + i] = std::cos(static_cast<double>(angle));
      sin_v[t * half + i] = std::sin(static_cast<double>(angle));
    }
  }
  const auto f64 = torch::TensorOptions().dtype(at::kDouble);
  return {torch::from_blob(cos_v.data(), {seq, half}, f64).clone().to(torch::kCUDA),
          torch::from_blob(sin_v.data(), {seq, half}, f64).clone().to(torch::kCUDA)};
}

// x (B, T, H, D) float64 rotated: out[i] = x[i] c - x[i + D/2] s, out[i + D/2] = x[i + D/2] c + x[i] s.
at::Tensor rotate_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t T = x.size(1), half = x.size(3) / 2;
  auto c = cos.view({1, T, 1, half}), s = sin.view({1, T, 1, half});
  auto lo = x.narrow(3, 0, half), hi = x.narrow(3, half, half);
  return torch::cat({lo * c - hi * s, hi * c + lo * s}, 3);
}

class ModelKernelRotary : public ::testing::TestWithParam<std::tuple<RotaryCase, Mode>> {
 protected:
  void SetUp() override { SKIP_WITHOUT_CUDA(); }
};

TEST_P(ModelKernelRotary, ForwardAndGradientsMatchFloat64) {
  const auto& [c, mode] = GetParam();
  at::Tensor q = randn({c.batch, c.seq, c.heads_q, c.dim}, mode.dtype);
  at::Tensor k = randn({c.batch, c.seq, c.heads_k, c.dim}, mode.dtype);
  at::Tensor gq = randn(q.sizes(), mode.dtype), gk = randn(k.sizes(), mode.dtype);
  if (c.unaligned) {
    q = unaligned_copy(q);
    k = unaligned_copy(k);
  }
  const auto [cos, sin] = rotary_tables(c.seq, c.dim, c.start, c.base);
  torch::AutoGradMode grad_on(true);
  auto qd = q.detach().to(at::kDouble).requires_grad_(true);
  auto kd = k.detach().to(at::kDouble).requires_grad_(true);
  auto q_ref = rotate_reference(qd, cos, sin), k_ref = rotate_reference(kd, cos, sin);
  torch::autograd::backward({q_ref, k_ref}, {gq.to(at::kDouble), gk.to(at::kDouble)});

  // Raw passes: forward, and the backward (rotation by -angle) on the gradients.
  at::Tensor q_out = poisoned(q.sizes(), mode.dtype), k_out = poisoned(k.sizes(), mode.dtype);
  bla::kernels::rotary_out(q, k, c.start, c.base, /*inverse=*/false, q_out, k_out);
  expect_close("q", q_out, q_ref.detach(), mode.tolerance);
  expect_close("k", k_out, k_ref.detach(), mode.tolerance);
  at::Tensor dq = poisoned(q.sizes(), mode.dtype), dk = poisoned(k.sizes(), mode.dtype);
  bla::kernels::rotary_out(gq, gk, c.start, c.base, /*inverse=*/true, dq, dk);
  expect_close("grad_q", dq, qd.grad(), mode.tolerance);
  expect_close("grad_k", dk, kd.grad(), mode.tolerance);

  // One tensor alone (k undefined) gives the same bits as in the pair.
  at::Tensor q_alone = poisoned(q.sizes(), mode.dtype), none;
  bla::kernels::rotary_out(q, at::Tensor(), c.start, c.base, false, q_alone, none);
  EXPECT_TRUE(torch::equal(q_alone, q_out));

  // The autograd Functions: pair and single.
  auto qa = q.detach().clone().requires_grad_(true), ka = k.detach().clone().requires_grad_(true);
  auto [qr, kr] = bla::kernels::rotary_pair_autograd(qa, ka, c.start, c.base);
  torch::autograd::backward({qr, kr}, {gq, gk});
  EXPECT_TRUE(torch::equal(qr, q_out));
  EXPECT_TRUE(torch::equal(kr, k_out));
  EXPECT_TRUE(torch::equal(qa.grad(), dq));
  EXPECT_TRUE(torch::equal(ka.grad(), dk));
  auto qs = q.detach().clone().requires_grad_(true);
  auto q_single = bla::kernels::rotary_autograd(qs, c.start, c.base);
  q_single.backward(gq);
  EXPECT_TRUE(torch::equal(q_single, q_out));
  EXPECT_TRUE(torch::equal(qs.grad(), dq));
}

INSTANTIATE_TEST_SUITE_P(Shapes, ModelKernelRotary, ::testing::Combine(::testing::ValuesIn(kRotaryCases),
                                                                       ::testing::ValuesIn(kModes)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
                         });

// The kernel's angles against the LibTorch form's own float32 tables on the
// GPU: at early positions they agree to float32 rounding; late positions
// (8192) amplify one-ulp differences of inv_freq (powf against the kernel's
// pow in double), hence the looser bound there.
// Queries and keys as views of one joined (B, T, (Hq + Hk + Hv) * D) product
// (their tokens evenly spaced, not contiguous) are read in place: the bits of
// the same rotation of contiguous copies, forward and backward; also for a
// single token (T = 1) and a single sequence.
TEST(ModelKernelRotaryViews, ViewsOfAJoinedProductGiveTheContiguousBits) {
  SKIP_WITHOUT_CUDA();
  for (const auto& mode : kModes) {
    for (const auto& shape : std::vector<std::vector<int64_t>>{{3, 45, 4, 2, 64}, {5, 1, 2, 2, 128}, {1, 33, 3, 1, 100}}) {
      const int64_t B = shape[0], T = shape[1], Hq = shape[2], Hk = shape[3], D = shape[4];
      const std::string tag = std::string(mode.name) + " B" + std::to_string(B) + " T" + std::to_string(T) + " D" +
                              std::to_string(D);
      const auto joined = randn({B, T, (Hq + 2 * Hk) * D}, mode.dtype);
      const auto gq = randn({B, T, Hq, D}, mode.dtype), gk = randn({B, T, Hk, D}, mode.dtype);
      auto jv = joined.clone().requires_grad_(true);
      auto q = jv.narrow(-1, 0, Hq * D).view({B, T, Hq, D});
      auto k = jv.narrow(-1, Hq * D, Hk * D).view({B, T, Hk, D});
      ASSERT_FALSE(q.is_contiguous());
      auto [qr, kr] = bla::kernels::rotary_pair_autograd(q, k, 3, 10000.0);
      torch::autograd::backward({qr, kr}, {gq, gk});
      auto qc = q.detach().contiguous().requires_grad_(true), kc = k.detach().contiguous().requires_grad_(true);
      auto [qr2, kr2] = bla::kernels::rotary_pair_autograd(qc, kc, 3, 10000.0);
      torch::autograd::backward({qr2, kr2}, {gq, gk});
      EXPECT_TRUE(torch::equal(qr, qr2)) << tag << ": q";
      EXPECT_TRUE(torch::equal(kr, kr2)) << tag << ": k";
      EXPECT_TRUE(torch::equal(jv.grad().narrow(-1, 0, Hq * D).reshape({B, T, Hq, D}), qc.grad())) << tag << ": grad q";
      EXPECT_TRUE(torch::equal(jv.grad().narrow(-1, Hq * D, Hk * D).reshape({B, T, Hk, D}), kc.grad()))
          << tag << ": grad k";
    }
  }
}

TEST(ModelKernelRotaryForm, MatchesLibTorchForm) {
  SKIP_WITHOUT_CUDA();
  for (const int64_t start : {int64_t{0}, int64_t{8192}}) {
    auto x = torch::randn({2, 64, 4, 64}, cuda_f32());
    auto y = bla::kernels::rotary_autograd(x, start, 10000.0);
    auto y_ref = bla::mixers::apply_rotary_libtorch(x, start, 10000.0);
    expect_close("rotary vs LibTorch form, start " + std::to_string(start), y, y_ref, start == 0 ? 1e-5 : 5e-3);
  }
}

// ------------------------------------------------------------------ ensemble RMSNorm

// One launch for E members: each member's output and gradients have the bits
// of the solo kernel on its rows with its weight.
TEST(ModelKernelRmsNormMembers, EachMemberEqualsTheSoloKernel) {
  SKIP_WITHOUT_CUDA();
  for (const auto& mode : kModes) {
    for (int64_t dim : {128, 100, 7}) {
      const int64_t E = 3, B = 2, T = 45;
      auto x = randn({E * B, T, dim}, mode.dtype, 1.5).requires_grad_(true);
      auto w = (1.0 + 0.4 * torch::randn({E, dim}, cuda_f32())).requires_grad_(true);
      auto gy = randn({E * B, T, dim}, mode.dtype);
      ASSERT_TRUE(bla::kernels::rms_norm_members_supported(x, w));
      auto y = bla::kernels::rms_norm_members_autograd(x, w, 1e-5);
      y.backward(gy);
      for (int64_t e = 0; e < E; ++e) {
        auto xe = x.detach().narrow(0, e * B, B).clone().requires_grad_(true);
        auto we = w.detach()[e].clone().requires_grad_(true);
        auto ye = bla::kernels::rms_norm_autograd(xe, we, 1e-5);
        ye.backward(gy.narrow(0, e * B, B));
        const std::string tag = std::string(mode.name) + " dim " + std::to_string(dim) + " member " + std::to_string(e);
        EXPECT_TRUE(torch::equal(y.detach().narrow(0, e * B, B), ye.detach())) << tag << ": y";
        EXPECT_TRUE(torch::equal(x.grad().narrow(0, e * B, B), xe.grad())) << tag << ": grad_x";
        EXPECT_TRUE(torch::equal(w.grad()[e], we.grad())) << tag << ": grad_weight";
      }
    }
  }
}

// ------------------------------------------------------------------ short convolution

struct ConvCase {
  const char* name;
  int64_t members, seqs, seq, channels, kernel;  // seqs per member; members 0: a solo weight (C, K)
  bool unaligned = false;
};
const ConvCase kConvCases[] = {
    {"solo_c64_k3", 0, 3, 37, 64, 3},
    {"members_c128_k3", 3, 2, 50, 128, 3},
    {"members_c128_k4_t256", 2, 4, 256, 128, 4},
    {"odd_c7_k4", 2, 2, 21, 7, 4},
    {"t1_k3", 0, 5, 1, 64, 3},
    {"k1", 0, 2, 17, 32, 1},
    {"k8_c24", 2, 1, 40, 24, 8},
    {"c768", 0, 2, 33, 768, 3},
    {"unaligned_c64", 0, 2, 30, 64, 3, true},
};

class ModelKernelShortConv : public ::testing::TestWithParam<std::tuple<ConvCase, Mode>> {
 protected:
  void SetUp() override { SKIP_WITHOUT_CUDA(); }
};

TEST_P(ModelKernelShortConv, ForwardHasTheLibTorchFormsBitsAndGradientsMatchFloat64) {
  const auto& [c, mode] = GetParam();
  const int64_t E = std::max<int64_t>(c.members, 1), M = E * c.seqs, K = c.kernel, C = c.channels;
  std::vector<int64_t> w_shape = {C, K}, b_shape = {C};
  if (c.members > 0) {
    w_shape.insert(w_shape.begin(), E);
    b_shape.insert(b_shape.begin(), E);
  }
  at::Tensor x = randn({M, c.seq, C}, mode.dtype, 1.3), gy = randn({M, c.seq, C}, mode.dtype);
  if (c.unaligned) {
    x = unaligned_copy(x);
    gy = unaligned_copy(gy);
  }
  const at::Tensor w = 0.6 * torch::randn(w_shape, cuda_f32()), b = 0.3 * torch::randn(b_shape, cuda_f32());
  ASSERT_TRUE(bla::kernels::short_conv_supported(x, w, b));

  // The LibTorch form on the same inputs (what runs on the CPU and in decoding) and in float64.
  auto libtorch_form = [&](const at::Tensor& xi, const at::Tensor& wi, const at::Tensor& bi) {
    auto padded = at::constant_pad_nd(xi, {0, 0, K - 1, 0}, 0);
    return bla::mixers::causal_depthwise_conv(padded, 1, xi.size(1), wi, bi);
  };
  torch::AutoGradMode grad_on(true);
  auto xd = x.detach().to(at::kDouble).requires_grad_(true);
  auto wd = w.to(at::kDouble).requires_grad_(true), bd = b.to(at::kDouble).requires_grad_(true);
  auto y_ref = libtorch_form(xd, wd, bd);
  y_ref.backward(gy.to(at::kDouble));

  at::Tensor y = poisoned(x.sizes(), mode.dtype);
  bla::kernels::short_conv_forward_out(x, w, b, y);
  expect_close("y", y, y_ref.detach(), mode.tolerance);
  EXPECT_TRUE(torch::equal(y, libtorch_form(x, w, b))) << "forward differs from the LibTorch form's bits";

  at::Tensor gx = poisoned(x.sizes(), mode.dtype), gw = poisoned(w.sizes(), at::kFloat), gb = poisoned(b.sizes(), at::kFloat);
  bla::kernels::short_conv_backward_out(x, w, gy, gx, gw, gb);
  expect_close("grad_x", gx, xd.grad(), mode.tolerance);
  expect_close("grad_weight", gw, wd.grad(), mode.dtype == at::kFloat ? 1e-5 : 2e-2);
  expect_close("grad_bias", gb, bd.grad(), mode.dtype == at::kFloat ? 1e-5 : 2e-2);

  // Summed in a fixed order: the same bits again; through autograd, the same passes.
  at::Tensor gx2 = poisoned(x.sizes(), mode.dtype), gw2 = poisoned(w.sizes(), at::kFloat), gb2 = poisoned(b.sizes(), at::kFloat);
  bla::kernels::short_conv_backward_out(x, w, gy, gx2, gw2, gb2);
  EXPECT_TRUE(torch::equal(gx, gx2) && torch::equal(gw, gw2) && torch::equal(gb, gb2)) << "two identical runs differ";
  auto xa = x.detach().clone().requires_grad_(true);
  auto wa = w.clone().requires_grad_(true), ba = b.clone().requires_grad_(true);
  auto ya = bla::kernels::short_conv_autograd(xa, wa, ba);
  ya.backward(gy);
  EXPECT_TRUE(torch::equal(ya, y));
  EXPECT_TRUE(torch::equal(xa.grad(), gx));
  EXPECT_TRUE(torch::equal(wa.grad(), gw));
  EXPECT_TRUE(torch::equal(ba.grad(), gb));

  // An ensemble's members: the bits of a solo call on each member's sequences.
  if (c.members > 0) {
    for (int64_t e = 0; e < E; ++e) {
      auto xe = x.narrow(0, e * c.seqs, c.seqs).contiguous(), ge = gy.narrow(0, e * c.seqs, c.seqs).contiguous();
      at::Tensor ye = poisoned(xe.sizes(), mode.dtype), gxe = poisoned(xe.sizes(), mode.dtype);
      at::Tensor gwe = poisoned({C, K}, at::kFloat), gbe = poisoned({C}, at::kFloat);
      bla::kernels::short_conv_forward_out(xe, w[e].contiguous(), b[e].contiguous(), ye);
      bla::kernels::short_conv_backward_out(xe, w[e].contiguous(), ge, gxe, gwe, gbe);
      EXPECT_TRUE(torch::equal(ye, y.narrow(0, e * c.seqs, c.seqs))) << "member " << e << ": y";
      EXPECT_TRUE(torch::equal(gxe, gx.narrow(0, e * c.seqs, c.seqs))) << "member " << e << ": grad_x";
      EXPECT_TRUE(torch::equal(gwe, gw[e])) << "member " << e << ": grad_weight";
      EXPECT_TRUE(torch::equal(gbe, gb[e])) << "member " << e << ": grad_bias";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ModelKernelShortConv, ::testing::Combine(::testing::ValuesIn(kConvCases),
                                                                          ::testing::ValuesIn(kModes)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
                         });

// The module on CUDA (the kernel) and its decode step (the LibTorch form,
// token by token): decoding reproduces the training forward to the last bit.
TEST(ModelKernelShortConvModule, DecodeStepsReproduceTheForward) {
  SKIP_WITHOUT_CUDA();
  bla::mixers::ShortConv conv(96, 3);
  conv->to(torch::kCUDA);
  const auto x = torch::randn({4, 29, 96}, cuda_f32());
  torch::NoGradGuard no_grad;
  const auto y = conv->forward(x);
  auto cache = conv->initial_cache(4, cuda_f32());
  for (int64_t t = 0; t < x.size(1); ++t) {
    const auto step = conv->step(x.select(1, t), cache);
    ASSERT_TRUE(torch::equal(step, y.select(1, t))) << "token " << t;
  }
}

// The free function as the Mamba2-like mixer calls it, on its slice of the
// input projection (a view with the projection's row stride), bf16 as under
// autocast, kernel 4: the kernel's forward has the LibTorch form's bits, and
// the gradient reaches the projection inside the slice only.
TEST(ModelKernelShortConvModule, TheFunctionTakesAProjectionsSliceAsMamba2PassesIt) {
  SKIP_WITHOUT_CUDA();
  const int64_t B = 3, T = 37, width = 200, offset = 40, C = 96, K = 4;
  const auto projection = randn({B, T, width}, at::kBFloat16).requires_grad_(true);
  const at::Tensor w = 0.6 * torch::randn({C, K}, cuda_f32()), b = 0.3 * torch::randn({C}, cuda_f32());
  const auto slice = projection.narrow(-1, offset, C);
  ASSERT_FALSE(slice.is_contiguous());
  const auto y = bla::mixers::short_conv(slice, w, b);
  const auto gy = randn({B, T, C}, at::kBFloat16);
  y.backward(gy);
  const auto grad = projection.grad().clone();

  const auto leaf = projection.detach().requires_grad_(true);
  const auto padded = at::constant_pad_nd(leaf.narrow(-1, offset, C), {0, 0, K - 1, 0}, 0);
  const auto y_ref = bla::mixers::causal_depthwise_conv(padded, 1, T, w, b);
  EXPECT_TRUE(torch::equal(y.detach(), y_ref.detach())) << "forward differs from the LibTorch form's bits";
  y_ref.backward(gy);
  EXPECT_TRUE(torch::equal(grad.narrow(-1, 0, offset), torch::zeros_like(grad.narrow(-1, 0, offset))));
  EXPECT_TRUE(torch::equal(grad.narrow(-1, offset + C, width - offset - C),
                           torch::zeros_like(grad.narrow(-1, offset + C, width - offset - C))));
  expect_close("grad in the slice", grad.narrow(-1, offset, C), leaf.grad().narrow(-1, offset, C).to(at::kDouble), 2e-2);
}

// ------------------------------------------------------------------ head cross-entropy

TEST(ModelKernelHeadLoss, LossHitsAndGradientMatchFloat64) {
  SKIP_WITHOUT_CUDA();
  for (const auto& mode : kModes) {
    for (int64_t vocab : {8192, 1003, 64}) {
      const int64_t rows = 517;
      auto logits = randn({rows, vocab}, mode.dtype, 3.0);
      auto targets = torch::randint(0, vocab, {rows}, torch::TensorOptions().device(torch::kCUDA).dtype(at::kLong));
      targets.index_put_({torch::arange(0, rows, 7, targets.options())}, -100);  // ignored rows
      {  // a row whose largest logit is repeated: the first one counts
        torch::NoGradGuard no_grad;
        logits[3].fill_(-1.0);
        logits[3][5] = 4.0;
        logits[3][9] = 4.0;
        targets[3] = 9;
      }
      auto g = torch::rand({rows}, cuda_f32()) + 0.5;
      auto la = logits.detach().clone().requires_grad_(true);
      auto [loss, hit] = bla::kernels::head_loss_autograd(la, targets);
      loss.backward(g);

      torch::AutoGradMode grad_on(true);
      auto ld = logits.detach().to(at::kDouble).requires_grad_(true);
      const auto valid = targets.ge(0);
      auto per_row = torch::nn::functional::cross_entropy(
          ld, targets, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kNone));
      per_row.backward(g.to(at::kDouble));
      const auto hit_ref = (logits.to(at::kFloat).argmax(-1).eq(targets) & valid).to(at::kFloat);
      const std::string tag = std::string(" (") + mode.name + ", vocab " + std::to_string(vocab) + ")";
      expect_close("loss" + tag, loss, per_row.detach(), 1e-5);
      EXPECT_TRUE(torch::equal(hit, hit_ref)) << "hits" << tag;
      EXPECT_EQ(hit[3].item<float>(), 0.f) << "the first of two largest logits is the argmax" << tag;
      expect_close("grad_logits" + tag, la.grad(), ld.grad(), mode.dtype == at::kFloat ? 1e-5 : 1e-2);
      EXPECT_EQ(la.grad().index({targets.lt(0)}).abs().sum().item<double>(), 0.0) << "ignored rows get no gradient" << tag;
    }
  }
}

// The plain head as training runs it on CUDA (head_cross_entropy_plain: the
// kernel above over full logits) against head_cross_entropy_reference (LibTorch's
// cross_entropy on float32 logits): loss, hits, count and both gradients, in
// float32 and under bf16 autocast as the step runs it.
TEST(ModelKernelHeadLoss, ThePlainHeadMatchesTheReference) {
  SKIP_WITHOUT_CUDA();
  for (const bool bf16 : {false, true}) {
    const int64_t rows = 300, d = 64, vocab = 1003;
    auto hidden = randn({rows, d}, at::kFloat);
    auto weight = randn({vocab, d}, at::kFloat, 0.3);
    auto targets = torch::randint(0, vocab, {rows}, torch::TensorOptions().device(torch::kCUDA).dtype(at::kLong));
    targets.index_put_({torch::arange(0, rows, 5, targets.options())}, -100);
    auto run = [&](bool plain) {
      auto h = hidden.clone().requires_grad_(true), w = weight.clone().requires_grad_(true);
      if (bf16) bla::compat::set_cuda_autocast(true, at::kBFloat16);
      const auto out = plain ? bla::model::head_cross_entropy_plain(h, w, targets)
                             : bla::model::head_cross_entropy_reference(h, w, targets);
      if (bf16) bla::compat::set_cuda_autocast(false, at::kBFloat16);
      out.loss.backward();
      return std::vector<at::Tensor>{out.loss.detach(), out.correct, out.count, h.grad(), w.grad()};
    };
    const auto got = run(true), want = run(false);
    const std::string tag = bf16 ? " (bf16 autocast)" : " (float32)";
    expect_close("loss" + tag, got[0], want[0], 1e-5);
    // bf16 products from mm and bmm may round apart, so a near tie may go the other way.
    EXPECT_NEAR(got[1].item<double>(), want[1].item<double>(), bf16 ? 3.0 : 0.0) << "hits" << tag;
    EXPECT_EQ(got[2].item<double>(), want[2].item<double>()) << "count" << tag;
    expect_close("d hidden" + tag, got[3], want[3], bf16 ? 1e-2 : 1e-5);
    expect_close("d weight" + tag, got[4], want[4], bf16 ? 1e-2 : 1e-5);
  }
}

// ------------------------------------------------------------------ dispatch

// Through the modules: the dispatched path (the kernels, unless BLA_KERNELS=0)
// against the LibTorch forms on the same inputs, forward and backward.
TEST(ModelKernelDispatch, RmsNormModuleMatchesLibTorchForm) {
  SKIP_WITHOUT_CUDA();
  for (const auto& mode : kModes) {
    bla::model::RMSNorm norm(768, 1e-5);
    norm->to(torch::kCUDA);
    auto weight = norm->named_parameters()["weight"];
    {
      torch::NoGradGuard no_grad;
      weight.copy_(1.0 + 0.3 * torch::randn({768}, cuda_f32()));
    }
    auto x = randn({3, 41, 768}, mode.dtype, 2.0).requires_grad_(true);
    auto gy = randn({3, 41, 768}, mode.dtype);
    auto y = norm->forward(x);
    y.backward(gy);
    const auto gx = x.grad().clone(), gw = weight.grad().clone();
    x.mutable_grad().reset();
    weight.mutable_grad().reset();
    auto y_ref = bla::mixers::rms_norm_libtorch(x, weight, 1e-5);
    y_ref.backward(gy);
    const std::string tag = std::string(" (") + mode.name + ")";
    expect_close("module y" + tag, y, y_ref, mode.tolerance);
    expect_close("module grad_x" + tag, gx, x.grad(), mode.tolerance);
    expect_close("module grad_weight" + tag, gw, weight.grad(), mode.tolerance);
  }
}

// Under bf16 autocast a norm into products gives the bf16 cast of the plain
// norm's output, and the same input and weight gradients (the cast's backward
// reads the bf16 gradient exactly); outside autocast it is the plain norm.
TEST(ModelKernelDispatch, NormIntoProductsIsThePlainNormCastUnderAutocast) {
  SKIP_WITHOUT_CUDA();
  bla::model::RMSNorm norm(128, 1e-5);
  norm->to(torch::kCUDA);
  auto weight = norm->named_parameters()["weight"];
  {
    torch::NoGradGuard no_grad;
    weight.copy_(1.0 + 0.3 * torch::randn({128}, cuda_f32()));
  }
  const auto x0 = randn({4, 33, 128}, at::kFloat, 2.0);
  const auto gy = randn({4, 33, 128}, at::kBFloat16);
  auto run = [&](bool into_products, bool autocast) {
    auto x = x0.clone().requires_grad_(true);
    weight.mutable_grad().reset();
    if (autocast) bla::compat::set_cuda_autocast(true, at::kBFloat16);
    auto y = into_products ? norm->into_products(x) : norm->forward(x).to(autocast ? at::kBFloat16 : at::kFloat);
    if (autocast) bla::compat::set_cuda_autocast(false, at::kBFloat16);
    y.backward(gy.to(y.scalar_type()));
    return std::make_tuple(y.detach(), x.grad().clone(), weight.grad().clone());
  };
  const auto [y1, gx1, gw1] = run(true, true);
  const auto [y2, gx2, gw2] = run(false, true);
  EXPECT_EQ(y1.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(torch::equal(y1, y2));
  EXPECT_TRUE(torch::equal(gx1, gx2));
  EXPECT_TRUE(torch::equal(gw1, gw2));
  const auto [y3, gx3, gw3] = run(true, false);
  const auto [y4, gx4, gw4] = run(false, false);
  EXPECT_EQ(y3.scalar_type(), at::kFloat);
  EXPECT_TRUE(torch::equal(y3, y4));
  EXPECT_TRUE(torch::equal(gx3, gx4));
  EXPECT_TRUE(torch::equal(gw3, gw4));
}

TEST(ModelKernelDispatch, SwigluModuleMatchesLibTorchForm) {
  SKIP_WITHOUT_CUDA();
  for (const auto& mode : kModes) {
    bla::model::SwiGLU mlp(128, 344, 0.05);
    mlp->to(torch::kCUDA, mode.dtype);
    auto x = randn({2, 33, 128}, mode.dtype).requires_grad_(true);
    auto gy = randn({2, 33, 128}, mode.dtype);
    auto y = mlp->forward(x);
    y.backward(gy);
    const auto gx = x.grad().clone();
    x.mutable_grad().reset();
    auto params = mlp->named_parameters();
    namespace F = torch::nn::functional;
    auto gate = F::linear(x, params["gate.weight"]), up = F::linear(x, params["up.weight"]);
    auto y_ref = F::linear(bla::model::swiglu_activation_libtorch(gate, up), params["down.weight"]);
    y_ref.backward(gy);
    const std::string tag = std::string(" (") + mode.name + ")";
    expect_close("module y" + tag, y, y_ref, mode.tolerance);
    expect_close("module grad_x" + tag, gx, x.grad(), mode.tolerance);
  }
}

// The SwiGLU module on CUDA (gate and up joined into one product, the joined
// kernel) against the CPU's form (two products, LibTorch's silu) on the same
// weights, in float32: output and every gradient.
TEST(ModelKernelDispatch, SwigluModuleJoinedMatchesTheTwoProductForm) {
  SKIP_WITHOUT_CUDA();
  bla::model::SwiGLU mlp(96, 256, 0.05);
  mlp->to(torch::kCUDA);
  const auto x0 = randn({2, 29, 96}, at::kFloat);
  const auto gy = randn({2, 29, 96}, at::kFloat);
  auto x = x0.clone().requires_grad_(true);
  mlp->forward(x).backward(gy);
  auto params = mlp->named_parameters();
  auto xr = x0.clone().requires_grad_(true);
  auto wg = params["gate.weight"].detach().clone().requires_grad_(true);
  auto wu = params["up.weight"].detach().clone().requires_grad_(true);
  auto wd = params["down.weight"].detach().clone().requires_grad_(true);
  auto yr = torch::matmul(torch::silu(torch::matmul(xr, wg.t())) * torch::matmul(xr, wu.t()), wd.t());
  yr.backward(gy);
  expect_close("swiglu joined y", mlp->forward(x0), yr.detach(), 1e-5);
  expect_close("swiglu joined grad_x", x.grad(), xr.grad(), 1e-5);
  expect_close("swiglu joined grad gate", params["gate.weight"].grad(), wg.grad(), 1e-5);
  expect_close("swiglu joined grad up", params["up.weight"].grad(), wu.grad(), 1e-5);
  expect_close("swiglu joined grad down", params["down.weight"].grad(), wd.grad(), 1e-5);
}

TEST(ModelKernelDispatch, ProjectHeadsRotaryMatchesLibTorchForm) {
  SKIP_WITHOUT_CUDA();
  auto q_proj = bla::mixers::make_projection(64, 64, 0.1), k_proj = bla::mixers::make_projection(64, 64, 0.1);
  auto v_proj = bla::mixers::make_projection(64, 64, 0.1);
  q_proj->to(torch::kCUDA);
  k_proj->to(torch::kCUDA);
  v_proj->to(torch::kCUDA);
  auto x = torch::randn({2, 50, 64}, cuda_f32());
  auto p = bla::mixers::project_heads(x, q_proj, k_proj, v_proj, /*heads=*/4, /*rope=*/true, 10000.0, /*start=*/3);
  auto q_ref = bla::mixers::apply_rotary_libtorch(bla::mixers::split_heads(q_proj->forward(x), 4), 3, 10000.0);
  auto k_ref = bla::mixers::apply_rotary_libtorch(bla::mixers::split_heads(k_proj->forward(x), 4), 3, 10000.0);
  expect_close("project_heads q", p.q, q_ref, 1e-5);
  expect_close("project_heads k", p.k, k_ref, 1e-5);
}

// ------------------------------------------------------------------ CUDA graph

// One forward+backward through all three kernels (RMSNorm -> SwiGLU and
// rotary), captured into a CUDA graph on a side stream, replayed on new
// inputs copied into the captured ones, and compared with eager runs on the
// same inputs: the property the trainer's captured step needs.
TEST(ModelKernelGraph, CapturedForwardBackwardMatchesEager) {
  SKIP_WITHOUT_CUDA();
  const int64_t B = 2, T = 48, H = 4, D = 32, C = H * D;
  for (const auto& mode : kModes) {
    auto x = randn({B, T, C}, mode.dtype).requires_grad_(true);
    auto w = (1.0 + 0.3 * torch::randn({C}, cuda_f32())).requires_grad_(true);
    auto u = randn({B, T, C}, mode.dtype).requires_grad_(true);
    auto c1 = randn({B, T, C}, mode.dtype), c2 = randn({B, T, H, D}, mode.dtype), c3 = randn({B, T, H, D}, mode.dtype);

    auto step = [&] {
      auto y = bla::kernels::rms_norm_autograd(x, w, 1e-5);
      auto h = bla::kernels::swiglu_autograd(y, u);
      auto [q, k] = bla::kernels::rotary_pair_autograd(y.view({B, T, H, D}), u.view({B, T, H, D}), 5, 10000.0);
      auto loss = (h.to(at::kFloat) * c1.to(at::kFloat)).sum() + (q.to(at::kFloat) * c2.to(at::kFloat)).sum() +
                  (k.to(at::kFloat) * c3.to(at::kFloat)).sum();
      auto grads = torch::autograd::grad({loss}, {x, w, u});
      return std::vector<at::Tensor>{h.detach(), q.detach(), k.detach(), grads[0], grads[1], grads[2]};
    };

    torch::cuda::synchronize();
    auto side = c10::cuda::getStreamFromPool();
    at::cuda::CUDAGraph graph;
    std::vector<at::Tensor> captured;
    {
      c10::cuda::CUDAStreamGuard on_side(side);
      for (int i = 0; i < 2; ++i) step();  // warm up off the capture (allocator, autograd)
      side.synchronize();
      graph.capture_begin();
      captured = step();
      graph.capture_end();
    }
    torch::cuda::synchronize();

    for (int round = 0; round < 2; ++round) {
      {
        torch::NoGradGuard no_grad;  // fresh inputs into the captured tensors
        x.copy_(randn(x.sizes(), mode.dtype));
        u.copy_(randn(u.sizes(), mode.dtype));
        w.copy_(1.0 + 0.3 * torch::randn({C}, cuda_f32()));
      }
      graph.replay();
      torch::cuda::synchronize();
      const auto eager = step();
      torch::cuda::synchronize();
      const char* names[] = {"h", "q", "k", "grad_x", "grad_w", "grad_u"};
      for (size_t i = 0; i < eager.size(); ++i) {
        const std::string what = std::string("graph ") + names[i] + " (" + mode.name + ")";
        expect_close(what, captured[i], eager[i], 1e-6);
        std::printf("    %-28s bit-identical: %s\n", what.c_str(), torch::equal(captured[i], eager[i]) ? "yes" : "no");
      }
    }
  }
}

}  // namespace
