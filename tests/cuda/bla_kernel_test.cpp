// The fused BLA kernels (kernels/bla_*.cu) on fresh random inputs:
//   - the op as training calls it (blurry_window_attention on CUDA, which
//     routes to the kernel) against the LibTorch chunked form in float64:
//     output and the gradients of q, k, v;
//   - the raw passes, with every output buffer filled with NaN first, against
//     the kernel's algorithm written in LibTorch ops in float64
//     (tests/support/bla_kernel_algorithm.h): output, dq, dk, dv and the
//     gradients of the modal slots, for arbitrary incoming slots;
//   - the chunk step's autograd Function (which saves the probabilities)
//     against those raw passes (which recompute them).
// float32 inputs must agree to 1e-4 and bf16 inputs to 1e-2 (relative, in
// the Frobenius norm), docs/bla.md's last required test.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "bla/ops/attention/attention.h"
#include "bla/ops/bla/bla.h"
#include "bla/ops/bla/modal.h"
#include "bla_kernels/bla.h"
#include "support/bla_kernel_algorithm.h"
#include "support/bla_kernel_cases.h"
#include "support/tensor_checks.h"

namespace {

using bla::testing::relative_error;

using bla::ops::BlaOptions;

using Case = bla::testing::BlaKernelCase;
using Mode = bla::testing::BlaKernelMode;

const Case kCases[] = {
    {"odd_seq", 2, 100, 3, 64, 40, 8},
    {"seq_below_window", 1, 77, 2, 64, 256, 16},
    {"slots_100_padded", 1, 300, 2, 64, 300, 100},
    {"d128", 2, 200, 2, 128, 512, 64},
    {"long", 2, 1000, 2, 64, 512, 64},
    {"window_just_above_slots", 1, 130, 1, 64, 65, 64},
    {"slots_128", 1, 257, 1, 64, 1024, 128},
    {"single_token", 1, 1, 1, 64, 8, 4},
    {"one_slot", 1, 90, 1, 128, 16, 1},
    {"d128_slots_128", 1, 200, 2, 128, 1024, 128},
    {"d128_slots_100_padded", 2, 130, 1, 128, 300, 100},
    // N <= 32 runs the 32-slot kernels, 33 .. 64 the 64-slot ones.
    {"slots_32", 2, 300, 2, 64, 256, 32},
    {"slots_48_padded", 1, 200, 2, 64, 256, 48},
    {"d128_slots_20_padded", 1, 150, 2, 128, 256, 20},
};

const Mode kModes[] = {
    {"f32", at::kFloat, 1e-4},
    {"bf16", at::kBFloat16, 1e-2},
};

const auto kCudaF32 = torch::TensorOptions().device(torch::kCUDA).dtype(at::kFloat);

// Checks and prints (for docs/performance.md) one relative error.
void expect_close(const char* name, const at::Tensor& got, const at::Tensor& want, double tolerance) {
  const double error = relative_error(got, want);
  std::printf("    %-14s rel err %.3e\n", name, error);
  EXPECT_LT(error, tolerance) << name;
}

int64_t chunk_count(const Case& c) { return (c.seq + 63) / 64; }

// Random inputs of the chunk step alone: q, k, v and grad_out of the mode's
// dtype, modal slots (B, H, nc, N, D) float32, drawn in that order.
struct ChunkStepInputs {
  at::Tensor q, k, v, grad_out, modal_keys, modal_values;
};

ChunkStepInputs random_chunk_step_inputs(const Case& c, const Mode& mode, uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t nc = chunk_count(c);
  auto draw = [&] { return torch::randn({c.batch, c.seq, c.heads, c.dim}, kCudaF32).to(mode.dtype); };
  ChunkStepInputs in;
  in.q = draw();
  in.k = draw();
  in.v = draw();
  in.grad_out = draw();
  in.modal_keys = torch::randn({c.batch, c.heads, nc, c.slots, c.dim}, kCudaF32);
  in.modal_values = torch::randn({c.batch, c.heads, nc, c.slots, c.dim}, kCudaF32);
  return in;
}

bla::kernels::BlaChunkTables kernel_tables(const Case& c, c10::Device device) {
  return bla::testing::bla_kernel_tables(c.window, c.slots, device);
}

class BlaKernel : public ::testing::TestWithParam<std::tuple<Case, Mode>> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(BlaKernel, OpMatchesTheChunkedFormInFloat64) {
  const auto& [c, mode] = GetParam();
  torch::manual_seed(1);
  const BlaOptions opt{c.window, c.slots, 64};
  auto draw = [&] { return torch::randn({c.batch, c.seq, c.heads, c.dim}, kCudaF32).to(mode.dtype); };
  const at::Tensor q = draw().requires_grad_(true), k = draw().requires_grad_(true), v = draw().requires_grad_(true);
  std::string why;
  ASSERT_TRUE(bla::ops::bla_kernel_supported(q, k, v, opt, &why)) << why;

  const at::Tensor out = bla::ops::blurry_window_attention(q, k, v, opt);
  ASSERT_EQ(out.scalar_type(), mode.dtype);
  const at::Tensor grad_out = torch::randn(out.sizes(), kCudaF32).to(mode.dtype);
  const auto grads = torch::autograd::grad({out}, {q, k, v}, {grad_out});

  const auto to64 = [](const at::Tensor& x) { return x.detach().to(at::kDouble).requires_grad_(true); };
  const at::Tensor q64 = to64(q), k64 = to64(k), v64 = to64(v);
  const at::Tensor want = bla::ops::blurry_window_attention_chunked(q64, k64, v64, opt);
  const auto want_grads = torch::autograd::grad({want}, {q64, k64, v64}, {grad_out.to(at::kDouble)});

  expect_close("op.out", out, want, mode.tolerance);
  expect_close("op.dq", grads[0], want_grads[0], mode.tolerance);
  expect_close("op.dk", grads[1], want_grads[1], mode.tolerance);
  expect_close("op.dv", grads[2], want_grads[2], mode.tolerance);
}

TEST_P(BlaKernel, RawPassesWriteEveryElementAndFollowTheAlgorithm) {
  const auto& [c, mode] = GetParam();
  const int64_t nc = chunk_count(c);
  const ChunkStepInputs inputs = random_chunk_step_inputs(c, mode, 2);
  const at::Tensor &q = inputs.q, &k = inputs.k, &v = inputs.v, &grad_out = inputs.grad_out;
  const at::Tensor &modal_keys = inputs.modal_keys, &modal_values = inputs.modal_values;
  const double scale = 0.11;

  const auto tables = kernel_tables(c, q.device());
  const auto nan_like = [](const at::Tensor& x) { return torch::full_like(x, NAN); };
  at::Tensor out = nan_like(q), dq = nan_like(q), dk = nan_like(k), dv = nan_like(v);
  at::Tensor dmk = nan_like(modal_keys), dmv = nan_like(modal_values);
  bla::kernels::bla_chunk_forward_out(q, k, v, modal_keys, modal_values, tables, scale, out);
  bla::kernels::bla_chunk_backward_out(q, k, v, modal_keys, modal_values, tables, scale, grad_out, dq, dk, dv, dmk,
                                       dmv);
  torch::cuda::synchronize();

  const bla::testing::Tables t = bla::testing::make_tables(c.window, c.slots, 64, nc, q.device());
  bla::testing::ChunkInputs in;
  in.q = bla::testing::to_chunks(q.to(at::kDouble), 64);
  in.k = bla::testing::to_chunks(k.to(at::kDouble), 64);
  in.v = bla::testing::to_chunks(v.to(at::kDouble), 64);
  in.modal_keys = modal_keys.to(at::kDouble);
  in.modal_values = modal_values.to(at::kDouble);
  const auto tokens = [&](const at::Tensor& chunked) {  // (B, H, nc, 64, D) -> (B, T, H, D)
    return chunked.reshape({c.batch, c.heads, nc * 64, c.dim}).slice(2, 0, c.seq).permute({0, 2, 1, 3});
  };
  const at::Tensor want = tokens(bla::testing::kernel_forward(in, t, scale));
  const bla::testing::ChunkGrads g =
      bla::testing::kernel_backward(in, bla::testing::to_chunks(grad_out.to(at::kDouble), 64), t, scale);

  for (const auto& [name, got] : {std::pair<const char*, at::Tensor>{"out", out}, {"dq", dq}, {"dk", dk},
                                  {"dv", dv}, {"d_modal_keys", dmk}, {"d_modal_values", dmv}})
    EXPECT_TRUE(torch::isfinite(got).all().item<bool>()) << name << " has unwritten (NaN) elements";
  expect_close("chunk.out", out, want, mode.tolerance);
  expect_close("chunk.dq", dq, tokens(g.q), mode.tolerance);
  expect_close("chunk.dk", dk, tokens(g.k), mode.tolerance);
  expect_close("chunk.dv", dv, tokens(g.v), mode.tolerance);
  expect_close("chunk.dU_K", dmk, g.modal_keys, mode.tolerance);
  expect_close("chunk.dU_V", dmv, g.modal_values, mode.tolerance);
}

// The chunk step's autograd Function saves the probabilities in its forward
// and its backward reads them; the raw passes recompute them. Same
// arithmetic either way, so the two agree to float rounding, padded slots
// (N = 100) included: a check of the save/read path and of the Function's
// padding and unpadding of the modal slots and their grads.
TEST_P(BlaKernel, ChunkAutogradAgreesWithTheRawPasses) {
  const auto& [c, mode] = GetParam();
  const ChunkStepInputs inputs = random_chunk_step_inputs(c, mode, 4);
  const at::Tensor &q = inputs.q, &k = inputs.k, &v = inputs.v, &grad_out = inputs.grad_out;
  const at::Tensor &modal_keys = inputs.modal_keys, &modal_values = inputs.modal_values;
  const double scale = 0.11;
  const auto tables = kernel_tables(c, q.device());

  std::vector<at::Tensor> leaves;
  for (const at::Tensor& x : {q, k, v, modal_keys, modal_values}) leaves.push_back(x.detach().requires_grad_(true));
  const at::Tensor out =
      bla::kernels::bla_chunk_attention(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], tables, scale);
  const auto grads = torch::autograd::grad({out}, leaves, {grad_out});

  at::Tensor want = torch::empty_like(q), dq = torch::empty_like(q), dk = torch::empty_like(k),
             dv = torch::empty_like(v), dmk = torch::empty_like(modal_keys), dmv = torch::empty_like(modal_values);
  bla::kernels::bla_chunk_forward_out(q, k, v, modal_keys, modal_values, tables, scale, want);
  bla::kernels::bla_chunk_backward_out(q, k, v, modal_keys, modal_values, tables, scale, grad_out, dq, dk, dv, dmk,
                                       dmv);
  // The two kernels compile the probabilities' arithmetic separately, so a
  // last-bit difference may flip the rounding of a few bf16 outputs: 1e-4
  // there, far below the 1e-2 budget and far above what a wrong step gives.
  const double tolerance = mode.dtype == at::kBFloat16 ? 1e-4 : 1e-6;
  const char* names[] = {"q", "k", "v", "modal_keys", "modal_values"};
  const at::Tensor wants[] = {dq, dk, dv, dmk, dmv};
  expect_close("saved.out", out, want, tolerance);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(grads[i].sizes(), wants[i].sizes()) << names[i];
    expect_close((std::string("saved.d") + names[i]).c_str(), grads[i], wants[i], tolerance);
  }
}

// q, k and v as views of one (B, T, 3 H D) tensor, as the stacked
// projection makes them (mixers::project_stacked): the kernels read them
// through their token stride and give the bits of contiguous copies, output
// and every gradient (the op as training calls it).
TEST_P(BlaKernel, StackedProjectionViewsGiveTheBitsOfContiguousCopies) {
  const auto& [c, mode] = GetParam();
  torch::manual_seed(5);
  const BlaOptions opt{c.window, c.slots, 64};
  const at::Tensor qkv = torch::randn({c.batch, c.seq, 3 * c.heads * c.dim}, kCudaF32).to(mode.dtype);
  const at::Tensor grad_out = torch::randn({c.batch, c.seq, c.heads, c.dim}, kCudaF32).to(mode.dtype);
  at::Tensor outs[2], grads[2];
  for (const bool views : {true, false}) {
    const auto s = bla::testing::stacked_qkv(qkv, c.heads, c.dim, views);
    outs[views] = bla::ops::blurry_window_attention(s.q, s.k, s.v, opt);
    grads[views] = torch::autograd::grad({outs[views]}, {s.x}, {grad_out})[0];
  }
  EXPECT_TRUE(torch::equal(outs[1], outs[0]));
  EXPECT_TRUE(torch::equal(grads[1], grads[0]));
}

INSTANTIATE_TEST_SUITE_P(Shapes, BlaKernel, ::testing::Combine(::testing::ValuesIn(kCases), ::testing::ValuesIn(kModes)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
                         });

TEST(BlaKernelRouting, FullResolutionRunsTheSlidingWindowKernel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(3);
  const BlaOptions opt{48, 48, 64};
  const at::Tensor q = torch::randn({2, 150, 2, 64}, kCudaF32), k = torch::randn({2, 150, 2, 64}, kCudaF32),
                   v = torch::randn({2, 150, 2, 64}, kCudaF32);
  EXPECT_TRUE(bla::ops::bla_kernel_supported(q, k, v, opt));
  const at::Tensor want = bla::ops::blurry_window_attention_chunked(q.to(at::kDouble), k.to(at::kDouble),
                                                                    v.to(at::kDouble), opt);
  EXPECT_LT(relative_error(bla::ops::blurry_window_attention(q, k, v, opt), want), 1e-4);
}

TEST(BlaKernelRouting, UnsupportedInputsSayWhy) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto f64 = torch::TensorOptions().device(torch::kCUDA).dtype(at::kDouble);
  std::string why;
  const at::Tensor x64 = torch::zeros({1, 8, 1, 64}, f64);
  EXPECT_FALSE(bla::ops::bla_kernel_supported(x64, x64, x64, BlaOptions{16, 4, 64}, &why));
  EXPECT_EQ(why, "dtype Double is not supported; use bfloat16 or float32");
  const at::Tensor wide = torch::zeros({1, 8, 1, 128}, kCudaF32);
  EXPECT_TRUE(bla::ops::bla_kernel_supported(wide, wide, wide, BlaOptions{256, 100, 64}, &why)) << why;
  const at::Tensor narrow = torch::zeros({1, 8, 1, 32}, kCudaF32);
  EXPECT_FALSE(bla::ops::bla_kernel_supported(narrow, narrow, narrow, BlaOptions{16, 4, 64}, &why));
  EXPECT_EQ(why, "head dim 32 is not supported; use 64 or 128");
  // The op still runs (its LibTorch form) and says so once in the log.
  EXPECT_EQ(bla::ops::blurry_window_attention(narrow, narrow, narrow, BlaOptions{16, 4, 64}).sizes(),
            narrow.sizes());
}

}  // namespace
