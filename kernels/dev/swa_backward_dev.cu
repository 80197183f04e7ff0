// Development harness of the SWA backward kernels (kernels/dev/README.md):
// every tile shape measured so far, the SIMT kernels and the production
// launcher side by side, each checked against a float64 CPU reference on the
// edge shapes of the CUDA tests, then timed with CUDA events at the benchmark
// shape of docs/performance.md: the backward alone (delta, dQ pass, dK/dV
// pass) and after the production forward (the "fwd+bwd" of the docs). The
// kernels are the production templates (swa_backward_kernels.cuh); only their
// tile parameters differ here.
//
//   nvcc -std=c++17 -O3 -arch=sm_90 --use_fast_math -lineinfo --expt-relaxed-constexpr -Ikernels
//       kernels/dev/swa_backward_dev.cu kernels/swa_backward.cu kernels/swa_forward.cu -o swa_backward_dev
//   ./swa_backward_dev                        # both head dims, every variant
//   ./swa_backward_dev --dim 64 --variant 0 --bias
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "swa_backward_kernels.cuh"
#include "swa_dev.h"
#include "swa_launch.h"

namespace {

using namespace bla::kernels::detail;
using namespace swa_dev;

using Variant = swa_dev::Variant<SwaBackwardArgs>;

// Tiles <head dim; dQ warps, 16-row tiles per warp, key block; dK/dV warps,
// tiles per warp, query block; dQ min blocks per SM>.
template <int D, int DQ_WARPS, int DQ_MT, int DQ_BN, int KV_WARPS, int KV_MT, int KV_BM, int DQ_MIN_BLOCKS = 0>
Variant tile_variant(const char* id, const char* what) {
  return {id, what, launch_backward_tc<D, DQ_WARPS, DQ_MT, DQ_BN, KV_WARPS, KV_MT, KV_BM, DQ_MIN_BLOCKS>, [] {
            return "dQ " +
                   describe(kernel_resources(swa_backward_dq_tc<D, DQ_WARPS, DQ_MT, DQ_BN, DQ_MIN_BLOCKS>,
                                             DQ_WARPS * 32, dq_tc_smem_bytes<D, DQ_WARPS, DQ_MT, DQ_BN>())) +
                   "; dK/dV " +
                   describe(kernel_resources(swa_backward_dkdv_tc<D, KV_WARPS, KV_MT, KV_BM>, KV_WARPS * 32,
                                             dkdv_tc_smem_bytes<D, KV_WARPS, KV_MT, KV_BM>()));
          }};
}

template <int D>
std::vector<Variant> variants() {
  std::vector<Variant> v = {
      production_variant<SwaBackwardArgs, swa_backward_launch>("swa_backward_launch, tensor cores"),
      simt_variant<SwaBackwardArgs, swa_backward_launch>("one warp per query / per key, fp32", [] {
        return "dQ " + describe(kernel_resources(swa_backward_dq_simt<__nv_bfloat16, D>, kSimtWarps * 32, 0)) +
               "; dK/dV " + describe(kernel_resources(swa_backward_dkdv_simt<__nv_bfloat16, D>, kSimtWarps * 32, 0));
      }),
  };
  // Numbered as in docs/performance.md ("Versions that mattered"); "dQ pass /
  // dK,dV pass": warps x 16-row tiles per warp, then the block streamed.
  if constexpr (D == 64) {
    v.push_back(tile_variant<64, 4, 1, 64, 4, 1, 64>("0", "4x1 rows, keys 64 / 4x1 keys, queries 64"));
    v.push_back(tile_variant<64, 8, 1, 64, 8, 1, 64>("1", "8x1, keys 64 / 8x1, queries 64"));
    v.push_back(tile_variant<64, 4, 2, 32, 4, 2, 16>("2", "4x2, keys 32 / 4x2, queries 16"));
    v.push_back(tile_variant<64, 8, 2, 32, 8, 2, 32>("3", "8x2, keys 32 / 8x2, queries 32"));
    v.push_back(tile_variant<64, 4, 1, 64, 4, 1, 64, 3>("4", "0 with dQ capped at 3 blocks/SM"));
  } else {
    v.push_back(tile_variant<128, 4, 1, 32, 4, 1, 32>("0", "4x1 rows, keys 32 / 4x1 keys, queries 32"));
    v.push_back(tile_variant<128, 8, 1, 32, 8, 1, 32>("1", "8x1, keys 32 / 8x1, queries 32"));
  }
  return v;
}

// The backward's outputs and workspace for one shape.
struct Gradients {
  DeviceBuffer dq, dk, dv, dbias, delta;  // delta: twice as long with a bias (the rows' sums of dZ)
  Gradients(const SwaShape& shape, bool bias)
      : dq(numel(shape) * 2), dk(numel(shape) * 2), dv(numel(shape) * 2), delta(tokens(shape) * 4 * (bias ? 2 : 1)) {
    if (bias) dbias = DeviceBuffer(tokens(shape) * 4);
  }
  void poison() const {
    for (const DeviceBuffer* b : {&dq, &dk, &dv, &delta, &dbias})
      if (b->get() != nullptr) b->poison();
  }
};

// The backward's arguments: the forward's out and lse, the gradients and workspace.
SwaBackwardArgs backward_args(const DeviceInputs& in, const DeviceBuffer& out, const DeviceBuffer& lse,
                              const Gradients& g) {
  auto a = input_args<SwaBackwardArgs>(in);
  a.out = out.get();
  a.grad_out = in.grad_out.get();
  a.lse = lse.floats();
  a.delta = g.delta.floats();
  a.grad_q = g.dq.get();
  a.grad_k = g.dk.get();
  a.grad_v = g.dv.get();
  a.grad_bias = in.has_bias ? g.dbias.floats() : nullptr;
  return a;
}

cudaError_t production_forward(const DeviceInputs& in, const DeviceBuffer& out, const DeviceBuffer& lse) {
  return swa_forward_launch(forward_args(in, out, lse), SwaFamily::kTensorCore, 0);
}

// Each variant on every check shape (after the production forward), into
// NaN-filled gradients. Returns, per variant, why it failed (empty: passed).
std::vector<std::string> check_variants(int dim, const std::vector<Variant>& list) {
  std::printf("\n== D=%d: check against float64 on the CPU, ||x - ref|| / ||ref||, worst over %zu shapes "
              "(tolerance %.0e; dbias on the shapes with a bias)\n", dim, check_cases().size(), kTolerance);
  std::vector<std::string> failure(list.size());
  std::vector<std::vector<double>> worst(list.size(), std::vector<double>(4, 0.0));  // dq, dk, dv, dbias
  uint64_t seed = 1;
  for (const CheckCase& c : check_cases()) {
    const SwaShape shape = make_shape(c.batch, c.seq, c.heads, dim, c.window);
    const DeviceInputs in = random_inputs(shape, c.bias, seed++);
    const Reference ref = reference(to_host(in), /*backward=*/true);
    DeviceBuffer out(numel(shape) * 2), lse(tokens(shape) * 4);
    check(production_forward(in, out, lse), "production forward");
    const Gradients g(shape, c.bias);
    const SwaBackwardArgs args = backward_args(in, out, lse, g);
    for (size_t i = 0; i < list.size(); ++i) {
      if (!failure[i].empty()) continue;
      g.poison();
      cudaError_t err = list[i].launch(args, 0);
      if (err == cudaSuccess) err = cudaDeviceSynchronize();
      if (err != cudaSuccess) {
        failure[i] = std::string(c.name) + ": " + cudaGetErrorString(err);
        continue;
      }
      const double e[4] = {relative_error(from_device_bf16(g.dq, numel(shape)), ref.dq),
                           relative_error(from_device_bf16(g.dk, numel(shape)), ref.dk),
                           relative_error(from_device_bf16(g.dv, numel(shape)), ref.dv),
                           c.bias ? relative_error(from_device_f32(g.dbias, tokens(shape)), ref.dbias) : 0.0};
      for (int j = 0; j < 4; ++j) {
        worst[i][j] = std::max(worst[i][j], e[j]);
        if (!(e[j] < kTolerance)) failure[i] = std::string(c.name) + ": over tolerance";
      }
    }
  }
  std::printf("%-11s %-42s %9s %9s %9s %9s  %s\n", "variant", "tiles (dQ pass / dK,dV pass)", "dq", "dk", "dv",
              "dbias", "result");
  for (size_t i = 0; i < list.size(); ++i)
    std::printf("%-11s %-42s %9.2e %9.2e %9.2e %9.2e  %s\n", list[i].id.c_str(), list[i].tiles.c_str(), worst[i][0],
                worst[i][1], worst[i][2], worst[i][3],
                failure[i].empty() ? "pass" : ("FAIL (" + failure[i] + ")").c_str());
  return failure;
}

void time_variants(int dim, const std::vector<Variant>& list, const std::vector<std::string>& failure,
                   const Options& o) {
  const SwaShape shape = make_shape(o.batch, o.seq, o.heads > 0 ? o.heads : 1024 / dim, dim, o.window);
  std::printf("\n== D=%d: backward, B=%d T=%d H=%d W=%d bf16%s; median of %d reps over %d input sets after %d "
              "warm-up runs (CUDA events); fwd+bwd = the production forward, then the variant\n", dim, shape.batch,
              shape.seq, shape.heads, shape.window, o.bias ? " +bias" : "", o.reps, o.sets, o.warmup);
  std::vector<DeviceInputs> sets;
  std::vector<DeviceBuffer> outs, lses;
  for (int s = 0; s < o.sets; ++s) {
    sets.push_back(random_inputs(shape, o.bias, 1000 + s));
    outs.emplace_back(numel(shape) * 2);
    lses.emplace_back(tokens(shape) * 4);
    check(production_forward(sets[s], outs[s], lses[s]), "production forward");
  }
  const Gradients g(shape, o.bias);
  // Matmul FLOPs over the visible pairs by the usual count: forward 2 products,
  // backward 5 (3.5x the forward for both), though the dQ pass recomputes two.
  const double fwd_flops = 4.0 * dim * visible_pairs(shape);
  std::printf("%-11s %-42s %9s %9s %8s  %s\n", "variant", "tiles (dQ pass / dK,dV pass)", "bwd ms", "fwd+bwd",
              "TFLOP/s", "resources");
  for (size_t i = 0; i < list.size(); ++i) {
    const Variant& v = list[i];
    if (!failure[i].empty()) {
      std::printf("%-11s %-42s not timed: failed the check\n", v.id.c_str(), v.tiles.c_str());
      continue;
    }
    const double bwd_ms =
        median_ms([&](int s) { return v.launch(backward_args(sets[s], outs[s], lses[s], g), 0); }, o);
    const double both_ms = median_ms(
        [&](int s) {
          const cudaError_t err = production_forward(sets[s], outs[s], lses[s]);
          return err != cudaSuccess ? err : v.launch(backward_args(sets[s], outs[s], lses[s], g), 0);
        },
        o);
    std::printf("%-11s %-42s %9.3f %9.3f %8.1f  %s\n", v.id.c_str(), v.tiles.c_str(), bwd_ms, both_ms,
                3.5 * fwd_flops / (both_ms * 1e9), v.resources ? v.resources().c_str() : "");
  }
}

}  // namespace

int main(int argc, char** argv) {
  return run_program(parse_options(argc, argv), variants<64>, variants<128>, check_variants, time_variants);
}
