// The gated recurrence's CUDA kernels (kernels/gla_*, bla_kernels/gla.h) as
// training calls them: chunked_gated_recurrence on CUDA tensors from a zero
// state routes to the kernels, with the gradients from three more kernel
// passes (src/bla/ops/gla/backward.h). Held to the LibTorch chunked form in
// float64 on the CPU: the output and the gradients of q, k, v and g, on both
// decay axes, in float64, float32 and bfloat16, at T not a multiple of the
// kernels' 64-token chunk, T < 64, T = 1, head dims 64 and 128, Dk != Dv,
// dims that are not powers of two, and strong decays (bfloat16 inputs take
// the tensor-core kernels, on head dims wider than 64 in blocks of the head
// dims: src/bla/ops/gla/head_blocks.h); the final
// state; the tensor-core switch itself; reversed passes against flipped
// copies; token-major inputs read through their strides; bf16 and half
// inputs read as they are; a pass from given chunk states; the log gates'
// gradient kernel; the GLA and GSA
// ops end to end; and the exact error for unsupported inputs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "bla/ops/gla/backward.h"
#include "bla/ops/gla/gla.h"
#include "bla/ops/gsa/gsa.h"
#include "bla_kernels/gla.h"
#include "support/tensor_checks.h"

namespace {

using bla::ops::DecayAxis;
using bla::testing::expect_invalid_argument;
using bla::testing::relative_error;

struct Case {
  const char* name;
  int64_t batch, heads, seq, dk, dv;
  double g_low;  // log gates uniform in [g_low, -0.01]
};

struct Mode {
  const char* name;
  at::ScalarType dtype;
  double tolerance;  // on ||x - ref|| / ||ref||
};

const Case kCases[] = {
    {"odd_seq", 2, 2, 150, 64, 64, -1.0},       {"short_seq", 1, 2, 37, 64, 32, -0.5},
    {"single_token", 2, 1, 1, 64, 64, -0.3},    {"whole_chunks", 1, 2, 128, 32, 64, -0.2},
    {"d128", 1, 2, 200, 128, 128, -0.1},        {"odd_dims", 1, 2, 90, 48, 80, -0.5},
    {"strong_decay", 1, 2, 100, 64, 64, -20.0},
};

const Mode kModes[] = {
    {"f64", at::kDouble, 1e-10},
    {"f32", at::kFloat, 1e-4},
    {"bf16", at::kBFloat16, 1e-2},
};

class GlaKernel : public ::testing::TestWithParam<std::tuple<Case, Mode, DecayAxis>> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
};

// Drawn in float64, rounded through the mode's dtype so both sides see the same numbers.
at::Tensor draw(std::vector<int64_t> sizes, at::ScalarType dtype) {
  return torch::randn(sizes, torch::kFloat64).to(dtype).to(torch::kFloat64);
}

TEST_P(GlaKernel, RecurrenceMatchesTheChunkedFormInFloat64) {
  const auto& [c, mode, axis] = GetParam();
  torch::manual_seed(5 + c.seq + c.dk);
  const int64_t dg = axis == DecayAxis::Key ? c.dk : c.dv;
  const auto q = draw({c.batch, c.heads, c.seq, c.dk}, mode.dtype),
             k = draw({c.batch, c.heads, c.seq, c.dk}, mode.dtype),
             v = draw({c.batch, c.heads, c.seq, c.dv}, mode.dtype),
             grad_out = draw({c.batch, c.heads, c.seq, c.dv}, mode.dtype);
  const auto g = (torch::rand({c.batch, c.heads, c.seq, dg}, torch::kFloat64) * (c.g_low + 0.01) - 0.01)
                     .to(mode.dtype)
                     .to(torch::kFloat64);
  const double scale = 0.125;

  // The kernels run where they support the inputs in the compute dtype; in
  // float64 a chunk of head dim 128 needs more shared memory than a block has.
  const auto compute = mode.dtype == at::kDouble ? at::kDouble : at::kFloat;
  std::string why;
  const bool supported = bla::kernels::gated_recurrence_supported(
      q.to(torch::kCUDA, compute), k.to(torch::kCUDA, compute), v.to(torch::kCUDA, compute),
      g.to(torch::kCUDA, compute), axis == DecayAxis::Value, &why);
  if (mode.dtype == at::kDouble && std::max(c.dk, c.dv) == 128) {
    ASSERT_FALSE(supported);
    EXPECT_NE(why.find("bytes of shared memory"), std::string::npos) << why;
    GTEST_SKIP() << "float64 at head dim 128: " << why;
  }
  ASSERT_TRUE(supported) << why;

  auto run = [&](const torch::Device& device, at::ScalarType dtype) {
    std::vector<at::Tensor> leaves;
    for (const auto* x : {&q, &k, &v, &g}) leaves.push_back(x->to(device, dtype).detach().requires_grad_(true));
    const auto result = bla::ops::chunked_gated_recurrence(leaves[0], leaves[1], leaves[2], leaves[3], axis,
                                                           at::Tensor(), 64, 16, scale);
    result.output.backward(grad_out.to(device, dtype));
    return std::vector<at::Tensor>{result.output.detach(), leaves[0].grad(), leaves[1].grad(),
                                   leaves[2].grad(),       leaves[3].grad(), result.final_state.detach()};
  };
  const auto expected = run(torch::kCPU, at::kDouble);
  const auto got = run(torch::kCUDA, mode.dtype);
  const char* names[] = {"out", "dq", "dk", "dv", "dg", "final state"};
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_TRUE(got[i].defined()) << names[i];
    EXPECT_EQ(got[i].device().type(), torch::kCUDA) << names[i];
    if (i < 5) EXPECT_EQ(got[i].scalar_type(), mode.dtype) << names[i];
    EXPECT_TRUE(got[i].isfinite().all().item<bool>()) << names[i];
    const double err = relative_error(got[i], expected[i]);
    EXPECT_LT(err, mode.tolerance) << names[i] << ": relative error " << err;
    std::printf("    %-11s rel err %.3e\n", names[i], err);
  }
}

std::string case_name(const testing::TestParamInfo<std::tuple<Case, Mode, DecayAxis>>& info) {
  return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name +
         (std::get<2>(info.param) == DecayAxis::Key ? "_key" : "_value");
}

INSTANTIATE_TEST_SUITE_P(Shapes, GlaKernel,
                         testing::Combine(testing::ValuesIn(kCases), testing::ValuesIn(kModes),
                                          testing::Values(DecayAxis::Key, DecayAxis::Value)),
                         case_name);

// The layers' ops, bf16 on CUDA against float64 on the CPU: GLA (one pass on
// the key axis) and GSA (a value-axis pass, the slot softmax, a key-axis pass).
TEST(GlaKernelOps, GlaAndGsaOnCudaMatchTheCpuInFloat64) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(3);
  const int64_t B = 2, T = 300, H = 2, D = 64, slots = 32;
  auto bf16_values = [](std::vector<int64_t> sizes) { return draw(sizes, at::kBFloat16); };
  const auto q = bf16_values({B, T, H, D}), k = bf16_values({B, T, H, D}), v = bf16_values({B, T, H, D});
  // Log gates as the layers make them, rounded through bf16 like the other inputs.
  const auto gla_gate = (at::log_sigmoid(bf16_values({B, T, H, D}) + 3.0) / 16.0).to(at::kBFloat16).to(at::kDouble);
  const auto gsa_gate = at::log_sigmoid(bf16_values({B, T, H, slots}) + 3.0).to(at::kBFloat16).to(at::kDouble);
  const auto grad_out = bf16_values({B, T, H, D});
  using Op = std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&)>;
  const std::vector<std::pair<const char*, Op>> ops = {
      {"gla", [](const at::Tensor& a, const at::Tensor& b, const at::Tensor& c,
                 const at::Tensor& d) { return bla::ops::gated_linear_attention(a, b, c, d); }},
      {"gsa", [](const at::Tensor& a, const at::Tensor& b, const at::Tensor& c, const at::Tensor& d) {
         return bla::ops::gated_slot_attention(a, b, c, d);
       }}};
  for (const auto& [name, op] : ops) {
    const auto& gate = std::string(name) == "gla" ? gla_gate : gsa_gate;
    auto run = [&](const torch::Device& device, at::ScalarType dtype) {
      std::vector<at::Tensor> leaves;
      for (const auto* x : {&q, &k, &v, &gate}) leaves.push_back(x->to(device, dtype).detach().requires_grad_(true));
      const auto out = op(leaves[0], leaves[1], leaves[2], leaves[3]);
      out.backward(grad_out.to(device, dtype));
      return std::vector<at::Tensor>{out.detach(), leaves[0].grad(), leaves[1].grad(), leaves[2].grad(),
                                     leaves[3].grad()};
    };
    const auto expected = run(torch::kCPU, at::kDouble);
    const auto got = run(torch::kCUDA, at::kBFloat16);
    const char* names[] = {"out", "dq", "dk", "dv", "dgate"};
    for (size_t i = 0; i < expected.size(); ++i) {
      const double err = relative_error(got[i], expected[i]);
      EXPECT_LT(err, 2e-2) << name << " " << names[i] << ": relative error " << err;
      std::printf("    %s %-5s rel err %.3e\n", name, names[i], err);
    }
  }
}

// tensor_cores = true on float32 inputs: tf32 products where the head dims
// are at most 64 (outputs within tf32's rounding of the fp32 kernels', and
// not identical to them), the fp32 kernels above (identical bits).
TEST(GlaKernelChecks, TensorCoresRoundToTf32WhereTheHeadDimsAllow) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  struct Shape {
    int64_t seq, dk, dv;
    bool tensor_cores_fit;
  };
  for (const Shape shape : {Shape{150, 64, 64, true}, Shape{37, 16, 40, true}, Shape{90, 48, 80, false}}) {
    for (const bool value_axis : {false, true}) {
      torch::manual_seed(11 + shape.seq);
      const auto cuda = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
      const int64_t dg = value_axis ? shape.dv : shape.dk;
      const auto q = torch::randn({2, 2, shape.seq, shape.dk}, cuda);
      const auto k = torch::randn({2, 2, shape.seq, shape.dk}, cuda);
      const auto v = torch::randn({2, 2, shape.seq, shape.dv}, cuda);
      const auto g = torch::rand({2, 2, shape.seq, dg}, cuda) * -0.5 - 0.01;
      at::Tensor state_fp32, state_tc;
      bla::kernels::GatedRecurrenceKernelOptions options;
      options.value_axis = value_axis;
      options.scale = 0.125;
      const auto fp32 = bla::kernels::gated_recurrence_forward(q, k, v, g, options, &state_fp32);
      options.tensor_cores = true;
      const auto tc = bla::kernels::gated_recurrence_forward(q, k, v, g, options, &state_tc);
      const double err = relative_error(tc, fp32), state_err = relative_error(state_tc, state_fp32);
      std::printf("    T %ld Dk %ld Dv %ld %s axis: tensor cores vs fp32 rel err %.3e, state %.3e\n",
                  static_cast<long>(shape.seq), static_cast<long>(shape.dk), static_cast<long>(shape.dv),
                  value_axis ? "value" : "key", err, state_err);
      if (shape.tensor_cores_fit) {
        EXPECT_GT(err, 0.0) << "the tensor-core kernels did not run";
        EXPECT_LT(err, 2e-3);
        EXPECT_GT(state_err, 0.0);
        EXPECT_LT(state_err, 2e-3);
      } else {
        EXPECT_TRUE(tc.equal(fp32)) << "head dims over 64 keep the fp32 kernels";
        EXPECT_TRUE(state_tc.equal(state_fp32));
      }
    }
  }
}

// A reversed pass (the gradients' passes) reads the rows in reverse order:
// the same bits as the forward pass over copies flipped in time with the
// gates moved one token, its output flipped back (reversed_by_flipping), in
// float64, float32 and on tensor cores, on both axes.
TEST(GlaKernelChecks, AReversedPassIsTheForwardPassOverFlippedCopies) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const int64_t seq : {150, 37, 1}) {
    for (const auto dtype : {at::kDouble, at::kFloat}) {
      for (const bool tensor_cores : {false, true}) {
        if (tensor_cores && dtype == at::kDouble) continue;
        for (const bool value_axis : {false, true}) {
          torch::manual_seed(17 + seq);
          const auto cuda = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
          const int64_t dk = 64, dv = 48, dg = value_axis ? dv : dk;
          const auto q = torch::randn({2, 3, seq, dk}, cuda), k = torch::randn({2, 3, seq, dk}, cuda);
          const auto v = torch::randn({2, 3, seq, dv}, cuda);
          const auto g = torch::rand({2, 3, seq, dg}, cuda) * -0.5 - 0.01;
          const DecayAxis axis = value_axis ? DecayAxis::Value : DecayAxis::Key;
          const bla::ops::GatedForward kernel_pass = [&](const at::Tensor& fq, const at::Tensor& fk,
                                                         const at::Tensor& fv, const at::Tensor& fg, DecayAxis fa,
                                                         double fs, bool reversed) {
            bla::kernels::GatedRecurrenceKernelOptions options;
            options.value_axis = fa == DecayAxis::Value;
            options.scale = fs;
            options.tensor_cores = tensor_cores;
            options.reversed = reversed;
            return bla::kernels::gated_recurrence_forward(fq.contiguous(), fk.contiguous(), fv.contiguous(),
                                                          fg.contiguous(), options);
          };
          const auto in_place = kernel_pass(q, k, v, g, axis, 0.3, true);
          const auto flipped = bla::ops::reversed_by_flipping(kernel_pass, q, k, v, g, axis, 0.3);
          EXPECT_TRUE(in_place.equal(flipped))
              << "T " << seq << " " << c10::toString(dtype) << (tensor_cores ? " tensor cores" : "")
              << (value_axis ? " value axis" : " key axis") << ": max diff "
              << (in_place - flipped).abs().max().item<double>();
        }
      }
    }
  }
}

// Inputs that are transposed views of (B, T, H, D) tensors (the layers'
// layout) are read through their strides: the bits of their heads-first
// contiguous copies, and an output in the same token-major memory order
// (its transpose back is contiguous). A last axis of stride 2 is copied.
TEST(GlaKernelChecks, TokenMajorViewsGiveTheBitsOfContiguousCopies) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const bool tensor_cores : {false, true}) {
    for (const bool value_axis : {false, true}) {
      torch::manual_seed(23);
      const auto cuda = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
      const int64_t B = 2, T = 100, H = 3, Dk = 32, Dv = 40, Dg = value_axis ? Dv : Dk;
      auto heads_first = [](const at::Tensor& t) { return t.transpose(1, 2); };
      const auto q = heads_first(torch::randn({B, T, H, Dk}, cuda));
      const auto k = heads_first(torch::randn({B, T, H, Dk}, cuda));
      const auto v = heads_first(torch::randn({B, T, H, 2 * Dv}, cuda)).narrow(3, 0, Dv);  // rows of stride 2 Dv
      const auto g = heads_first(torch::rand({B, T, H, Dg}, cuda) * -0.5 - 0.01);
      const auto strided_last = heads_first(torch::randn({B, T, H, 2 * Dk}, cuda)).slice(3, 0, 2 * Dk, 2);
      bla::kernels::GatedRecurrenceKernelOptions options;
      options.value_axis = value_axis;
      options.scale = 0.25;
      options.tensor_cores = tensor_cores;
      const auto got = bla::kernels::gated_recurrence_forward(q, k, v, g, options);
      const auto expected = bla::kernels::gated_recurrence_forward(q.contiguous(), k.contiguous(), v.contiguous(),
                                                                   g.contiguous(), options);
      EXPECT_TRUE(got.equal(expected)) << "max diff " << (got - expected).abs().max().item<double>();
      EXPECT_TRUE(got.transpose(1, 2).is_contiguous()) << "o is token-major, as q";
      EXPECT_TRUE(expected.is_contiguous()) << "o is heads-first, as q";
      const auto with_copy = bla::kernels::gated_recurrence_forward(strided_last, k, v, g, options);
      const auto from_copy = bla::kernels::gated_recurrence_forward(strided_last.contiguous(), k, v, g, options);
      EXPECT_TRUE(with_copy.equal(from_copy));
    }
  }
}

// bf16 and half inputs are read as they are, in float32: the bits of their
// float32 copies, with or without tensor cores, a mix of dtypes included.
TEST(GlaKernelChecks, HalfInputsGiveTheBitsOfTheirFloat32Copies) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(29);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto q = torch::randn({2, 2, 90, 64}, cuda.dtype(torch::kBFloat16));
  const auto k = torch::randn({2, 2, 90, 64}, cuda.dtype(torch::kHalf));
  const auto v = torch::randn({2, 2, 90, 48}, cuda.dtype(torch::kBFloat16));
  const auto g = (torch::rand({2, 2, 90, 64}, cuda) * -0.5 - 0.01).to(torch::kBFloat16);
  for (const bool tensor_cores : {false, true}) {
    bla::kernels::GatedRecurrenceKernelOptions options;
    options.scale = 0.125;
    options.tensor_cores = tensor_cores;
    const auto got = bla::kernels::gated_recurrence_forward(q, k, v, g, options);
    const auto expected = bla::kernels::gated_recurrence_forward(q.to(torch::kFloat), k.to(torch::kFloat),
                                                                 v.to(torch::kFloat), g.to(torch::kFloat), options);
    EXPECT_EQ(got.scalar_type(), torch::kFloat);
    EXPECT_TRUE(got.equal(expected)) << (tensor_cores ? "tensor cores" : "fp32");
  }
}

// The log gates' gradient kernel against the LibTorch scan in float64:
// bf16, half and float32 inputs (one a token-major view), dg in g's dtype
// and memory order; all float64 to 1e-12.
TEST(GlaKernelChecks, GateGradientMatchesTheScanInFloat64) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(31);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const int64_t B = 2, H = 3, T = 300, W = 40;
  for (const bool f64 : {false, true}) {
    const auto a = torch::randn({B, H, T, W}, cuda.dtype(f64 ? torch::kDouble : torch::kBFloat16));
    const auto da = torch::randn({B, T, H, W}, cuda.dtype(f64 ? torch::kDouble : torch::kFloat)).transpose(1, 2);
    const auto c = torch::randn({B, H, T, W}, cuda.dtype(f64 ? torch::kDouble : torch::kHalf));
    const auto dc = torch::randn({B, H, T, W}, cuda.dtype(f64 ? torch::kDouble : torch::kFloat));
    const auto g = torch::zeros({B, T, H, W}, cuda.dtype(f64 ? torch::kDouble : torch::kBFloat16)).transpose(1, 2);
    const auto got = bla::kernels::gated_recurrence_gate_gradient(a, da, c, dc, g);
    EXPECT_EQ(got.scalar_type(), g.scalar_type());
    EXPECT_TRUE(got.transpose(1, 2).is_contiguous()) << "dg in g's token-major order";
    auto cpu64 = [](const at::Tensor& t) { return t.to(torch::kCPU, torch::kDouble); };
    const auto expected = bla::ops::gate_gradient_by_scan(cpu64(a), cpu64(da), cpu64(c), cpu64(dc), cpu64(g));
    const double err = relative_error(cpu64(got), expected);
    EXPECT_LT(err, f64 ? 1e-12 : 1e-2) << (f64 ? "float64" : "bf16 output");
    std::printf("    gate gradient %s: rel err %.3e\n", f64 ? "float64" : "bf16", err);
  }
}

// A pass given the states entering its chunks (a transposed view of a
// contiguous copy, as the backward's passes hand them over: backward.h) gives
// the bits of the pass that computed them, forward and reversed, with and
// without tensor cores; the computed ones come back in the given form; states
// that do not fit, and a final state asked of a given-states pass, are
// rejected naming what was expected.
TEST(GlaKernelChecks, APassFromGivenChunkStatesGivesTheBitsOfThePassThatComputedThem) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    for (const bool tensor_cores : {false, true}) {
      if (tensor_cores && dtype == at::kDouble) continue;
      for (const bool reversed : {false, true}) {
        torch::manual_seed(41);
        const auto cuda = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
        const int64_t B = 2, H = 3, T = 150, Dk = 64, Dv = 48;
        const auto q = torch::randn({B, H, T, Dk}, cuda), k = torch::randn({B, H, T, Dk}, cuda);
        const auto v = torch::randn({B, H, T, Dv}, cuda), g = torch::rand({B, H, T, Dk}, cuda) * -0.5 - 0.01;
        bla::kernels::GatedRecurrenceKernelOptions options;
        options.scale = 0.3;
        options.tensor_cores = tensor_cores;
        options.reversed = reversed;
        at::Tensor states;
        const auto own = bla::kernels::gated_recurrence_forward(q, k, v, g, options, nullptr, &states);
        const int64_t chunks = bla::kernels::gated_recurrence_chunks(T);
        ASSERT_EQ(states.sizes(), (std::vector<int64_t>{B, H, chunks, Dk, Dv}));
        options.entering_states = states.transpose(3, 4).contiguous().transpose(3, 4);  // strides (.., 1, Dk)
        const auto given = bla::kernels::gated_recurrence_forward(q, k, v, g, options);
        EXPECT_TRUE(given.equal(own)) << c10::toString(dtype) << (tensor_cores ? " tensor cores" : "")
                                      << (reversed ? " reversed" : "") << ": max diff "
                                      << (given - own).abs().max().item<double>();
      }
    }
  }
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto x = torch::randn({1, 2, 70, 8}, cuda), g = torch::rand({1, 2, 70, 8}, cuda) * -0.5;
  bla::kernels::GatedRecurrenceKernelOptions options;
  options.entering_states = torch::zeros({1, 2, 2, 8, 4}, cuda);
  expect_invalid_argument([&] { bla::kernels::gated_recurrence_forward(x, x, x, g, options); },
                          "bla: gla kernel: entering states [1, 2, 2, 8, 4] Float on cuda:0, expected [1, 2, 2, 8, 8] "
                          "Float on cuda:0");
  options.entering_states = torch::zeros({1, 2, 2, 8, 8}, cuda);
  at::Tensor last;
  expect_invalid_argument([&] { bla::kernels::gated_recurrence_forward(x, x, x, g, options, &last); },
                          "bla: gla kernel: a pass from given entering states has no final state");
}

TEST(GlaKernelChecks, UnsupportedInputsSayWhy) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto x = torch::zeros({1, 2, 10, 64}, cuda.dtype(torch::kInt));
  std::string why;
  EXPECT_FALSE(bla::kernels::gated_recurrence_supported(x, x, x, x, false, &why));
  EXPECT_EQ(why, "dtype Int (float32, bfloat16, half or float64 only)");
  const auto f64 = torch::zeros({1, 2, 10, 64}, cuda.dtype(torch::kDouble));
  const auto bf16 = torch::zeros({1, 2, 10, 64}, cuda.dtype(torch::kBFloat16));
  EXPECT_FALSE(bla::kernels::gated_recurrence_supported(f64, bf16, f64, f64, false, &why));
  EXPECT_EQ(why, "q, k, v and g must be all float64 or none");
  EXPECT_TRUE(bla::kernels::gated_recurrence_supported(bf16, bf16.to(torch::kFloat), bf16.to(torch::kHalf), bf16,
                                                       false, &why))
      << why;
  const auto wide = torch::zeros({1, 2, 10, 192}, cuda.dtype(torch::kFloat));
  EXPECT_FALSE(bla::kernels::gated_recurrence_supported(wide, wide, wide, wide, false, &why));
  EXPECT_EQ(why, "head dims Dk 192, Dv 192 (1 to 128)");
  expect_invalid_argument([&] { bla::kernels::gated_recurrence_forward(x, x, x, x, {}); },
                          "bla: gla kernel: unsupported inputs: dtype Int (float32, bfloat16, half or float64 only)");
}

}  // namespace
