// Blurry Window Attention (docs/bla.md, "What the tests must show"):
// the chunked form and the decode step held to the token-by-token reference,
// N == W held to an independent sliding-window attention, gradients held to
// finite differences, and the operators' stability measured as it is.
#include "bla/ops/bla/bla.h"

#include "bla/ops/attention/attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "support/finite_difference.h"
#include "support/tensor_checks.h"

using bla::testing::max_abs_diff;

namespace bla::ops {
namespace {

struct Qkv {
  at::Tensor q, k, v;
};

// Random (B, T, H, D) inputs from a fixed seed.
Qkv random_qkv(int64_t batch, int64_t length, int64_t heads, int64_t dk, int64_t dv, uint64_t seed,
               at::ScalarType dtype = at::kDouble) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  Qkv x;
  x.q = at::randn({batch, length, heads, dk}, generator, f64).to(dtype);
  x.k = at::randn({batch, length, heads, dk}, generator, f64).to(dtype);
  x.v = at::randn({batch, length, heads, dv}, generator, f64).to(dtype);
  return x;
}

// Sliding-window attention written here, independent of the project's ops:
// query t sees keys t-W < s <= t.
at::Tensor sliding_window_attention_here(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         int64_t window, double scale) {
  const at::Tensor qh = q.permute({0, 2, 1, 3}), kh = k.permute({0, 2, 1, 3}), vh = v.permute({0, 2, 1, 3});
  const int64_t length = q.size(1);
  const at::Tensor t = at::arange(length).unsqueeze(1), s = at::arange(length).unsqueeze(0);
  const at::Tensor outside = (s > t) | (s <= t - window);
  const at::Tensor scores = at::matmul(qh, kh.transpose(-1, -2)) * scale;
  const at::Tensor weights = at::softmax(scores.masked_fill(outside, -INFINITY), -1);
  return at::matmul(weights, vh).permute({0, 2, 1, 3});
}

// Runs the decode step over a whole (B, T, H, D) sequence, from `state`.
at::Tensor decode_sequence(const Qkv& x, BlaState& state, const BlaOptions& opt) {
  std::vector<at::Tensor> outputs;
  for (int64_t t = 0; t < x.q.size(1); ++t)
    outputs.push_back(bla_decode_step(x.q.select(1, t), x.k.select(1, t), x.v.select(1, t), state, opt));
  return at::stack(outputs, 1);
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no std::invalid_argument thrown)";
}

// Impulse response h(tau) = A^tau b for tau = 0..count-1 by direct iteration
// (the operators' kernel only reaches the chunk size).
at::Tensor impulse_response(const BlaOperators& ops, int64_t count) {
  std::vector<at::Tensor> h{ops.b};
  for (int64_t tau = 1; tau < count; ++tau) h.push_back(at::matmul(ops.A, h.back()));
  return at::stack(h, 0);  // (count, N)
}

// ----------------------------------------------------------------- options

TEST(BlaOptions, RejectsBadOptionsWithExactMessages) {
  EXPECT_EQ(message_of([] { (BlaOptions{64, 80, 64}).validate(); }),
            "bla: slots (80) must be <= window (64): lower slots or raise window");
  EXPECT_EQ(message_of([] { (BlaOptions{64, 0, 64}).validate(); }), "bla: slots (0) must be >= 1: raise slots");
  EXPECT_EQ(message_of([] { (BlaOptions{64, 16, 0}).validate(); }), "bla: chunk (0) must be >= 1: raise chunk");
  EXPECT_EQ(message_of([] { (BlaOptions{0, 1, 64}).validate(); }), "bla: window (0) must be >= 1: raise window");
  EXPECT_NO_THROW((BlaOptions{64, 64, 1}).validate());
  EXPECT_NO_THROW((BlaOptions{1, 1, 1}).validate());
}

TEST(BlaOptions, EveryEntryPointValidates) {
  const Qkv x = random_qkv(1, 3, 1, 2, 2, 1);
  const BlaOptions bad{4, 5, 2};
  const std::string expected = "bla: slots (5) must be <= window (4): lower slots or raise window";
  EXPECT_EQ(message_of([&] { blurry_window_attention(x.q, x.k, x.v, bad); }), expected);
  EXPECT_EQ(message_of([&] { blurry_window_attention_reference(x.q, x.k, x.v, bad); }), expected);
  EXPECT_EQ(message_of([&] { make_bla_operators(4, 5, 2); }), expected);
  EXPECT_EQ(message_of([&] { bla_initial_state(1, 1, 2, 2, bad, at::kDouble); }), expected);
}

TEST(BlaOptions, RejectsMismatchedInputsAndState) {
  const Qkv x = random_qkv(1, 3, 1, 2, 2, 1);
  const BlaOptions opt{4, 2, 2};
  EXPECT_EQ(message_of([&] { blurry_window_attention(x.q, x.k.narrow(3, 0, 1), x.v, opt); }),
            "bla: blurry_window_attention: q and k must have the same head_dim; got 2 and 1");
  BlaState state = bla_initial_state(1, 1, 2, 2, BlaOptions{4, 3, 2}, at::kDouble);  // 3 slots, not 2
  EXPECT_EQ(message_of([&] { bla_decode_step(x.q.select(1, 0), x.k.select(1, 0), x.v.select(1, 0), state, opt); }),
            "bla: bla_decode_step: state must hold keys [1, 1, 2, 2] and values [1, 1, 2, 2] (batch, heads, slots, "
            "head_dim); got keys [1, 1, 3, 2], values [1, 1, 3, 2]: make it with bla_initial_state and the same "
            "options");
}

// --------------------------------------------------------------- operators

TEST(BlaOperators, DirichletKernelInterpolatesIntegers) {
  for (int64_t n : {1, 2, 3, 4, 5, 8}) {
    for (int64_t u = -2 * n; u <= 2 * n; ++u) {
      const double expected = (u % n == 0) ? 1.0 : 0.0;
      EXPECT_NEAR(dirichlet_kernel(n, static_cast<double>(u)), expected, 1e-14) << "N=" << n << " u=" << u;
    }
  }
}

TEST(BlaOperators, FullResolutionIsAShiftDroppingTheOldestSlot) {
  // N == W: r = 1, the forget step empties slot N-1 and the shift moves slot
  // j to j+1, so the slots hold exactly the last W tokens (docs/bla.md, "N = W").
  const int64_t n = 5;
  const BlaOperators ops = make_bla_operators(n, n, 3);
  const at::Tensor expected_a = at::eye(n, at::kDouble).roll(1, 0).index_put_({0, n - 1}, 0.0);
  EXPECT_LT(max_abs_diff(ops.A, expected_a), 1e-14);
  EXPECT_LT(max_abs_diff(ops.b, at::eye(n, at::kDouble)[0]), 1e-15);
}

TEST(BlaOperators, KernelPowersAndCausalKernelAgreeWithA) {
  const BlaOperators ops = make_bla_operators(12, 5, 6);
  ASSERT_EQ(ops.powers.sizes(), (std::vector<int64_t>{7, 5, 5}));
  ASSERT_EQ(ops.kernel.sizes(), (std::vector<int64_t>{6, 5}));
  ASSERT_EQ(ops.causal_kernel.sizes(), (std::vector<int64_t>{6, 6, 5}));
  at::Tensor power = at::eye(5, at::kDouble);
  for (int64_t tau = 0; tau <= 6; ++tau) {
    EXPECT_LT(max_abs_diff(ops.powers[tau], power), 1e-14) << "tau=" << tau;
    if (tau < 6) EXPECT_LT(max_abs_diff(ops.kernel[tau], at::matmul(power, ops.b)), 1e-14) << "tau=" << tau;
    power = at::matmul(ops.A, power);
  }
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t s = 0; s < 6; ++s)
      EXPECT_LT(max_abs_diff(ops.causal_kernel[i][s], s <= i ? ops.kernel[i - s] : at::zeros({5}, at::kDouble)),
                1e-15);
  // A is the three steps of docs/bla.md composed: Shift (I - p g^T).
  const at::Tensor composed =
      at::matmul(ops.shift, at::eye(5, at::kDouble) - at::outer(ops.forget_write, ops.forget_read));
  EXPECT_LT(max_abs_diff(ops.A, composed), 1e-15);
}

TEST(BlaOperators, CacheCastsOnceAndIsShared) {
  const BlaOperators first = bla_operators(10, 4, 3, at::kFloat, at::kCPU);
  const BlaOperators second = bla_operators(10, 4, 3, at::kFloat, at::kCPU);
  EXPECT_EQ(first.A.scalar_type(), at::kFloat);
  EXPECT_EQ(first.causal_kernel.data_ptr(), second.causal_kernel.data_ptr());
  EXPECT_LT(max_abs_diff(first.powers, make_bla_operators(10, 4, 3).powers), 1e-6);
  EXPECT_FALSE(first.A.requires_grad());

  // Many threads asking for a new key at once all get the one cached copy.
  std::vector<std::thread> threads;
  std::vector<void*> pointers(8, nullptr);
  for (size_t i = 0; i < pointers.size(); ++i)
    threads.emplace_back([&pointers, i] { pointers[i] = bla_operators(11, 3, 4, at::kFloat, at::kCPU).A.data_ptr(); });
  for (auto& thread : threads) thread.join();
  for (void* pointer : pointers) EXPECT_EQ(pointer, pointers[0]);
}

// ------------------------------------------------- N == W is sliding window

TEST(BlaSlidingWindow, FullResolutionEqualsSlidingWindowFloat64) {
  for (int64_t window : {1, 4, 7}) {
    for (int64_t length : {3, 13}) {  // T < W and T > W (for W > 3)
      const Qkv x = random_qkv(2, length, 2, 3, 5, 100 + window * 10 + length);
      const double scale = 1.0 / std::sqrt(3.0);
      const at::Tensor expected = sliding_window_attention_here(x.q, x.k, x.v, window, scale);
      for (int64_t chunk : {1, 3, 4, 16}) {
        const BlaOptions opt{window, window, chunk};
        EXPECT_LT(max_abs_diff(blurry_window_attention(x.q, x.k, x.v, opt), expected), 1e-12)
            << "W=" << window << " T=" << length << " C=" << chunk;
      }
      const BlaOptions opt{window, window, 4};
      EXPECT_LT(max_abs_diff(blurry_window_attention_reference(x.q, x.k, x.v, opt), expected), 1e-12)
          << "reference W=" << window << " T=" << length;
      BlaState state = bla_initial_state(2, 2, 3, 5, opt, at::kDouble);
      EXPECT_LT(max_abs_diff(decode_sequence(x, state, opt), expected), 1e-12)
          << "decode W=" << window << " T=" << length;
    }
  }
}

TEST(BlaSlidingWindow, FullResolutionEqualsSlidingWindowFloat32) {
  const Qkv x = random_qkv(2, 19, 2, 4, 3, 7, at::kFloat);
  for (auto [window, chunk] : {std::pair<int64_t, int64_t>{6, 4}, {8, 8}, {25, 5}}) {
    const at::Tensor expected =
        sliding_window_attention_here(x.q.to(at::kDouble), x.k.to(at::kDouble), x.v.to(at::kDouble), window, 0.5);
    const at::Tensor out = blurry_window_attention(x.q, x.k, x.v, BlaOptions{window, window, chunk, 0.5});
    EXPECT_EQ(out.scalar_type(), at::kFloat);
    EXPECT_LT(max_abs_diff(out, expected), 1e-5) << "W=" << window << " C=" << chunk;
  }
}

TEST(BlaSlidingWindow, FullResolutionEqualsTheProjectsSlidingWindowOp) {
  // The same identity against bla::ops::sliding_window_attention, so the two
  // ops of the project agree with each other and not only with this file.
  const Qkv x = random_qkv(2, 11, 2, 4, 4, 8);
  for (int64_t window : {3, 6}) {
    const WindowOptions swa{window, 0.0};
    const at::Tensor expected = sliding_window_attention_reference(x.q, x.k, x.v, swa);
    EXPECT_LT(max_abs_diff(sliding_window_attention(x.q, x.k, x.v, swa), expected), 1e-12);
    EXPECT_LT(max_abs_diff(blurry_window_attention(x.q, x.k, x.v, BlaOptions{window, window, 4}), expected), 1e-12)
        << "W=" << window;
  }
}

// ------------------------------------------------- chunked == reference

TEST(BlaChunked, MatchesReferenceFloat64) {
  // (W, N, C, T): non-integer r, C not dividing T, T < W, T > W, T = 1, N = 1,
  // and 19 and 37 chunks (the chunk scan's rounds over non-powers of two).
  const std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>> cases{
      {10, 4, 3, 17}, {12, 5, 5, 23}, {12, 5, 7, 5},  {8, 3, 4, 8},  {16, 7, 16, 40}, {9, 2, 2, 1},
      {6, 1, 4, 13},  {20, 6, 8, 50}, {7, 6, 1, 11}, {30, 8, 64, 45}, {13, 4, 2, 37}, {11, 3, 1, 37}};
  for (const auto& [window, slots, chunk, length] : cases) {
    const Qkv x = random_qkv(2, length, 2, 3, 4, 1000 + window * 100 + length);
    const BlaOptions opt{window, slots, chunk};
    const at::Tensor reference = blurry_window_attention_reference(x.q, x.k, x.v, opt);
    const at::Tensor chunked = blurry_window_attention(x.q, x.k, x.v, opt);
    ASSERT_EQ(chunked.sizes(), (std::vector<int64_t>{2, length, 2, 4}));
    EXPECT_LT(max_abs_diff(chunked, reference), 1e-10)
        << "W=" << window << " N=" << slots << " C=" << chunk << " T=" << length;
  }
}

TEST(BlaChunked, HonoursScaleAndFloat32) {
  const Qkv x = random_qkv(1, 21, 3, 5, 2, 77);
  const BlaOptions opt{10, 4, 6, 0.8};
  const at::Tensor reference = blurry_window_attention_reference(x.q, x.k, x.v, opt);
  EXPECT_LT(max_abs_diff(blurry_window_attention(x.q, x.k, x.v, opt), reference), 1e-10);
  // The scale must matter, or the line above proves nothing about it.
  EXPECT_GT(max_abs_diff(blurry_window_attention(x.q, x.k, x.v, BlaOptions{10, 4, 6}), reference), 1e-3);
  const at::Tensor f32 =
      blurry_window_attention(x.q.to(at::kFloat), x.k.to(at::kFloat), x.v.to(at::kFloat), opt);
  EXPECT_LT(max_abs_diff(f32, reference), 1e-5);
}

TEST(BlaChunked, Bfloat16InputsAreComputedInFloat32) {
  const Qkv x = random_qkv(1, 20, 2, 4, 4, 78, at::kBFloat16);
  const BlaOptions opt{9, 4, 8};
  const at::Tensor out = blurry_window_attention(x.q, x.k, x.v, opt);
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  // Against float64 on the same (rounded) inputs, only the output's own bf16
  // rounding remains: half an ulp, at most 2^-8 |out| per element. Computing
  // in bf16 throughout would break this bound.
  const at::Tensor exact =
      blurry_window_attention_reference(x.q.to(at::kDouble), x.k.to(at::kDouble), x.v.to(at::kDouble), opt);
  const at::Tensor excess = (out.to(at::kDouble) - exact).abs() - (exact.abs() / 256.0 + 1e-6);
  EXPECT_LE(excess.max().item<double>(), 0.0);
  BlaState state;
  blurry_window_attention_with_state(x.q, x.k, x.v, opt, &state);
  EXPECT_EQ(state.keys.scalar_type(), at::kFloat);
}

TEST(BlaChunked, EmptySequence) {
  const Qkv x = random_qkv(2, 0, 2, 3, 4, 5);
  BlaState state;
  const at::Tensor out = blurry_window_attention_with_state(x.q, x.k, x.v, BlaOptions{8, 3, 4}, &state);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 0, 2, 4}));
  EXPECT_EQ(state.position, 0);
  EXPECT_EQ(state.keys.sizes(), (std::vector<int64_t>{2, 2, 3, 3}));
}

// ------------------------------------------------------------- gradients

TEST(BlaGradient, CheckerCatchesAWrongGradient) {
  // x * detach(x) has autograd gradient x but true gradient 2x: the checker
  // must say so, or its passes below mean nothing.
  const at::Tensor x = at::linspace(0.5, 1.5, 4, at::kDouble);
  const auto wrong = [](const std::vector<at::Tensor>& in) { return in[0] * in[0].detach(); };
  const auto right = [](const std::vector<at::Tensor>& in) { return in[0] * in[0]; };
  EXPECT_FALSE(bla::testing::gradients_match(wrong, {x}));
  EXPECT_TRUE(bla::testing::gradients_match(right, {x}));
}

TEST(BlaGradient, ChunkedMatchesFiniteDifferences) {
  // Tiny, non-integer r, C not dividing T, T > W so the carry and the mask
  // are both on the path.
  const Qkv x = random_qkv(1, 7, 2, 2, 3, 42);
  const BlaOptions opt{5, 3, 3};
  const auto f = [&](const std::vector<at::Tensor>& in) { return blurry_window_attention(in[0], in[1], in[2], opt); };
  EXPECT_TRUE(bla::testing::gradients_match(f, {x.q, x.k, x.v}));
}

TEST(BlaGradient, IncomingStateMatchesFiniteDifferences) {
  const Qkv x = random_qkv(1, 5, 1, 2, 2, 43);
  const BlaOptions opt{6, 4, 2};
  auto generator = at::make_generator<at::CPUGeneratorImpl>(44);
  const at::Tensor keys = at::randn({1, 1, 4, 2}, generator, at::kDouble);
  const at::Tensor values = at::randn({1, 1, 4, 2}, generator, at::kDouble);
  const auto f = [&](const std::vector<at::Tensor>& in) {
    BlaState state{in[3], in[4], 2};  // position 2: slots 1.. are still masked
    const at::Tensor out = blurry_window_attention_with_state(in[0], in[1], in[2], opt, &state);
    return at::cat({out.reshape({-1}), state.keys.reshape({-1}), state.values.reshape({-1})});
  };
  EXPECT_TRUE(bla::testing::gradients_match(f, {x.q, x.k, x.v, keys, values}));
}

TEST(BlaGradient, ChunkedMatchesReferenceGradients) {
  // A larger case than finite differences can afford: autograd through the
  // chunked form against autograd through the recurrence.
  const Qkv x = random_qkv(2, 19, 2, 3, 4, 45);
  for (const BlaOptions opt : {BlaOptions{10, 4, 4}, BlaOptions{10, 4, 1}}) {  // 5 and 19 chunks
    const auto grads = [&](bool chunked) {
      const at::Tensor q = x.q.clone().requires_grad_(true), k = x.k.clone().requires_grad_(true),
                       v = x.v.clone().requires_grad_(true);
      const at::Tensor out = chunked ? blurry_window_attention(q, k, v, opt) : blurry_window_attention_reference(q, k, v, opt);
      (out * at::cos(at::arange(out.numel(), at::kDouble).view(out.sizes()))).sum().backward();
      return std::vector<at::Tensor>{q.grad(), k.grad(), v.grad()};
    };
    const auto chunked = grads(true), reference = grads(false);
    for (size_t i = 0; i < 3; ++i)
      EXPECT_LT(max_abs_diff(chunked[i], reference[i]), 1e-10) << "input " << i << ", chunk " << opt.chunk;
  }
}

// --------------------------------------------------------------- decoding

TEST(BlaDecode, TokenByTokenMatchesChunked) {
  const Qkv x = random_qkv(2, 25, 2, 3, 4, 50);
  const BlaOptions opt{10, 4, 3};
  BlaState state = bla_initial_state(2, 2, 3, 4, opt, at::kDouble);
  const at::Tensor decoded = decode_sequence(x, state, opt);
  EXPECT_LT(max_abs_diff(decoded, blurry_window_attention(x.q, x.k, x.v, opt)), 1e-10);
  EXPECT_EQ(state.position, 25);

  BlaState chunked_state;
  blurry_window_attention_with_state(x.q, x.k, x.v, opt, &chunked_state);
  EXPECT_EQ(chunked_state.position, 25);
  EXPECT_LT(max_abs_diff(chunked_state.keys, state.keys), 1e-10);
  EXPECT_LT(max_abs_diff(chunked_state.values, state.values), 1e-10);
}

TEST(BlaDecode, StateSizeDoesNotGrow) {
  const BlaOptions opt{10, 4, 4};
  const at::InferenceMode inference;
  BlaState state = bla_initial_state(1, 1, 4, 4, opt, at::kDouble);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(51);
  const at::Tensor tokens = at::randn({10000, 3, 1, 1, 4}, generator, at::kDouble);
  std::vector<int64_t> keys_after_10, values_after_10;
  at::Tensor out;
  for (int64_t t = 0; t < 10000; ++t) {
    out = bla_decode_step(tokens[t][0], tokens[t][1], tokens[t][2], state, opt);
    if (t + 1 == 10) {
      keys_after_10 = state.keys.sizes().vec();
      values_after_10 = state.values.sizes().vec();
    }
  }
  EXPECT_EQ(state.position, 10000);
  EXPECT_EQ(keys_after_10, (std::vector<int64_t>{1, 1, 4, 4}));
  EXPECT_EQ(state.keys.sizes().vec(), keys_after_10);
  EXPECT_EQ(state.values.sizes().vec(), values_after_10);
  // Bounded and alive after 10,000 steps: the slots still hold a blur of
  // recent tokens, neither blown up nor decayed away.
  EXPECT_TRUE(at::isfinite(state.keys).all().item<bool>());
  EXPECT_LT(state.keys.abs().max().item<double>(), 10.0);
  EXPECT_GT(state.values.abs().max().item<double>(), 1e-3);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 1, 4}));
}

TEST(BlaDecode, PrefillThenDecodeContinuesTheChunkedForm) {
  const Qkv x = random_qkv(2, 23, 2, 3, 2, 52);
  const BlaOptions opt{12, 5, 4};
  const at::Tensor full = blurry_window_attention(x.q, x.k, x.v, opt);
  for (int64_t prefill : {2, 11, 16}) {  // inside the mask, C not dividing it, a multiple of C
    const auto head = [&](const at::Tensor& t) { return t.narrow(1, 0, prefill); };
    const auto tail = [&](const at::Tensor& t) { return t.narrow(1, prefill, 23 - prefill); };
    BlaState state;
    const at::Tensor prefilled = blurry_window_attention_with_state(head(x.q), head(x.k), head(x.v), opt, &state);
    EXPECT_EQ(state.position, prefill);
    const at::Tensor decoded = decode_sequence(Qkv{tail(x.q), tail(x.k), tail(x.v)}, state, opt);
    EXPECT_LT(max_abs_diff(at::cat({prefilled, decoded}, 1), full), 1e-10) << "prefill " << prefill;
  }
}

TEST(BlaDecode, ChunkedCallsChainThroughTheState) {
  // Three chunked calls of uneven length carry the state like one call.
  const Qkv x = random_qkv(1, 30, 2, 2, 3, 53);
  const BlaOptions opt{9, 4, 4};
  BlaState state;
  std::vector<at::Tensor> pieces;
  for (auto [start, count] : {std::pair<int64_t, int64_t>{0, 3}, {3, 13}, {16, 14}})
    pieces.push_back(blurry_window_attention_with_state(x.q.narrow(1, start, count), x.k.narrow(1, start, count),
                                                        x.v.narrow(1, start, count), opt, &state));
  EXPECT_LT(max_abs_diff(at::cat(pieces, 1), blurry_window_attention(x.q, x.k, x.v, opt)), 1e-10);
  EXPECT_EQ(state.position, 30);
}

// -------------------------------------------------------------- stability

const std::vector<std::pair<int64_t, int64_t>> kBlurredPairs{{8, 4},  {10, 4}, {12, 5},  {64, 16},
                                                             {7, 3},  {64, 63}, {5, 1},  {16, 15}};

TEST(BlaStability, SpectralRadiusBelowOneWithTimeConstantOfAboutW) {
  for (const auto& [window, slots] : kBlurredPairs) {
    const double rho = spectral_radius(make_bla_operators(window, slots, 1).A);
    EXPECT_LT(rho, 1.0) << "W=" << window << " N=" << slots;
    // Measured: (1 - rho) W lies in [0.84, 2.04] for these pairs. The memory
    // forgets on a time scale of about W tokens, neither much faster nor slower.
    EXPECT_GT((1.0 - rho) * static_cast<double>(window), 0.5) << "W=" << window << " N=" << slots;
    EXPECT_LT((1.0 - rho) * static_cast<double>(window), 3.0) << "W=" << window << " N=" << slots;
  }
}

TEST(BlaStability, ImpulseResponseDecaysGeometricallyNotAtW) {
  // docs/bla.md, 'What "decays after W" means numerically'. What holds: for
  // N == W it is exactly zero from tau = W on (A is nilpotent); for N < W it
  // decays geometrically with a time constant of about W, so a real share of
  // it lies beyond W and it is negligible (< 1e-6) only after ~16 W.
  for (int64_t window : {3, 8}) {
    const at::Tensor h = impulse_response(make_bla_operators(window, window, 1), 3 * window);
    EXPECT_LT(h.slice(0, window).abs().max().item<double>(), 1e-14) << "N=W=" << window;
    EXPECT_GT(h.slice(0, 0, window).abs().amax(1).min().item<double>(), 0.99) << "N=W=" << window;
  }
  for (const auto& [window, slots] : kBlurredPairs) {
    const at::Tensor h = impulse_response(make_bla_operators(window, slots, 1), 17 * window);
    const at::Tensor size = h.abs().amax(1);  // |h(tau)|_inf
    const double start = size[0].item<double>();
    EXPECT_LT(size.slice(0, 16 * window).max().item<double>(), 1e-6 * start) << "W=" << window << " N=" << slots;
    const at::Tensor mass = h.abs().sum(1);
    const double beyond_window = mass.slice(0, window).sum().item<double>() / mass.sum().item<double>();
    EXPECT_GT(beyond_window, 0.05) << "W=" << window << " N=" << slots;  // measured 0.09 .. 0.40
    EXPECT_LT(beyond_window, 0.5) << "W=" << window << " N=" << slots;
  }
}

TEST(BlaStability, ConstantInputFillsEverySlotForOddN) {
  // The steady state of a constant token x is (I - A)^-1 b x^T. For odd N it
  // is exactly x in every slot: the blur keeps the window's average. (For
  // even N the Nyquist term makes neighbouring slots alternate around x.)
  for (const auto& [window, slots] : {std::pair<int64_t, int64_t>{12, 5}, {7, 3}, {64, 63}, {5, 1}, {10, 7}}) {
    const BlaOperators ops = make_bla_operators(window, slots, 1);
    const at::Tensor steady =
        at::linalg_solve(at::eye(slots, at::kDouble) - ops.A, ops.b.unsqueeze(1)).squeeze(1);
    EXPECT_LT(max_abs_diff(steady, at::ones({slots}, at::kDouble)), 1e-10) << "W=" << window << " N=" << slots;
  }
}

}  // namespace
}  // namespace bla::ops
