// Development harness of the SWA forward kernels (kernels/dev/README.md):
// every tile shape measured so far, the SIMT kernel and the production
// launcher side by side, each checked against a float64 CPU reference on the
// edge shapes of the CUDA tests, then timed with CUDA events at the benchmark
// shape of docs/performance.md. The kernels are the production templates
// (swa_forward_kernels.cuh); only their tile parameters differ here.
//
//   nvcc -std=c++17 -O3 -arch=sm_90 --use_fast_math -lineinfo --expt-relaxed-constexpr -Ikernels
//       kernels/dev/swa_forward_dev.cu kernels/swa_forward.cu -o swa_forward_dev
//   ./swa_forward_dev                         # both head dims, every variant
//   ./swa_forward_dev --dim 64 --variant 2 --window 2048
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "swa_dev.h"
#include "swa_forward_kernels.cuh"
#include "swa_launch.h"

namespace {

using namespace bla::kernels::detail;
using namespace swa_dev;

using Variant = swa_dev::Variant<SwaForwardArgs>;

// Tiles <head dim, warps, 16-row tiles per warp, key block, min blocks per SM>.
template <int D, int WARPS, int MT, int BN, int MIN_BLOCKS = 0>
Variant tile_variant(const char* id, const char* what) {
  return {id, what, launch_forward_tc<D, WARPS, MT, BN, MIN_BLOCKS>, [] {
            return describe(kernel_resources(swa_forward_tc<D, WARPS, MT, BN, MIN_BLOCKS>, WARPS * 32,
                                             forward_tc_smem_bytes<D, WARPS, MT, BN>()));
          }};
}

template <int D>
std::vector<Variant> variants() {
  std::vector<Variant> v = {
      production_variant<SwaForwardArgs, swa_forward_launch>("swa_forward_launch, tensor cores"),
      simt_variant<SwaForwardArgs, swa_forward_launch>("one warp per query, fp32 arithmetic", [] {
        return describe(kernel_resources(swa_forward_simt<__nv_bfloat16, D>, kSimtWarps * 32, 0));
      }),
  };
  // Numbered as in docs/performance.md ("Versions that mattered").
  if constexpr (D == 64) {
    v.push_back(tile_variant<64, 4, 1, 64>("0", "4 warps x 1 tile of 16 rows, keys 64"));
    v.push_back(tile_variant<64, 8, 1, 64>("1", "8 warps x 1 tile, keys 64"));
    v.push_back(tile_variant<64, 4, 2, 64>("2", "4 warps x 2 tiles, keys 64"));
    v.push_back(tile_variant<64, 4, 2, 32>("3", "4 warps x 2 tiles, keys 32"));
    v.push_back(tile_variant<64, 8, 2, 32>("4", "8 warps x 2 tiles, keys 32"));
    v.push_back(tile_variant<64, 4, 1, 64, 4>("5", "0 capped at 4 blocks/SM"));
    v.push_back(tile_variant<64, 4, 1, 128>("6", "4 warps x 1 tile, keys 128"));
  } else {
    v.push_back(tile_variant<128, 4, 1, 64>("0", "4 warps x 1 tile of 16 rows, keys 64"));
    v.push_back(tile_variant<128, 8, 1, 64>("1", "8 warps x 1 tile, keys 64"));
    v.push_back(tile_variant<128, 4, 1, 32>("2", "4 warps x 1 tile, keys 32"));
  }
  return v;
}

// Each variant on every check shape, into NaN-filled outputs. Returns, per
// variant, why it failed (empty: it passed).
std::vector<std::string> check_variants(int dim, const std::vector<Variant>& list) {
  std::printf("\n== D=%d: check against float64 on the CPU, ||x - ref|| / ||ref||, worst over %zu shapes "
              "(tolerance %.0e)\n", dim, check_cases().size(), kTolerance);
  std::vector<std::string> failure(list.size());
  std::vector<double> worst_out(list.size(), 0.0), worst_lse(list.size(), 0.0);
  uint64_t seed = 1;
  for (const CheckCase& c : check_cases()) {
    const SwaShape shape = make_shape(c.batch, c.seq, c.heads, dim, c.window);
    const DeviceInputs in = random_inputs(shape, c.bias, seed++);
    const Reference ref = reference(to_host(in), /*backward=*/false);
    DeviceBuffer out(numel(shape) * 2), lse(tokens(shape) * 4);
    const SwaForwardArgs args = forward_args(in, out, lse);
    for (size_t i = 0; i < list.size(); ++i) {
      if (!failure[i].empty()) continue;
      out.poison();
      lse.poison();
      cudaError_t err = list[i].launch(args, 0);
      if (err == cudaSuccess) err = cudaDeviceSynchronize();
      if (err != cudaSuccess) {
        failure[i] = std::string(c.name) + ": " + cudaGetErrorString(err);
        continue;
      }
      const double e_out = relative_error(from_device_bf16(out, numel(shape)), ref.out);
      const double e_lse = relative_error(from_device_f32(lse, tokens(shape)), ref.lse);
      worst_out[i] = std::max(worst_out[i], e_out);
      worst_lse[i] = std::max(worst_lse[i], e_lse);
      if (!(e_out < kTolerance && e_lse < kTolerance)) failure[i] = std::string(c.name) + ": over tolerance";
    }
  }
  std::printf("%-11s %-38s %9s %9s  %s\n", "variant", "tiles", "out", "lse", "result");
  for (size_t i = 0; i < list.size(); ++i)
    std::printf("%-11s %-38s %9.2e %9.2e  %s\n", list[i].id.c_str(), list[i].tiles.c_str(), worst_out[i],
                worst_lse[i], failure[i].empty() ? "pass" : ("FAIL (" + failure[i] + ")").c_str());
  return failure;
}

void time_variants(int dim, const std::vector<Variant>& list, const std::vector<std::string>& failure,
                   const Options& o) {
  const SwaShape shape = make_shape(o.batch, o.seq, o.heads > 0 ? o.heads : 1024 / dim, dim, o.window);
  std::printf("\n== D=%d: forward, B=%d T=%d H=%d W=%d bf16%s; median of %d reps over %d input sets after %d "
              "warm-up runs (CUDA events)\n", dim, shape.batch, shape.seq, shape.heads, shape.window,
              o.bias ? " +bias" : "", o.reps, o.sets, o.warmup);
  std::vector<DeviceInputs> sets;
  for (int s = 0; s < o.sets; ++s) sets.push_back(random_inputs(shape, o.bias, 1000 + s));
  DeviceBuffer out(numel(shape) * 2), lse(tokens(shape) * 4);
  const double flops = 4.0 * dim * visible_pairs(shape);  // QK^T and PV over the visible pairs
  std::printf("%-11s %-38s %9s %8s  %s\n", "variant", "tiles", "ms", "TFLOP/s", "resources");
  for (size_t i = 0; i < list.size(); ++i) {
    const Variant& v = list[i];
    if (!failure[i].empty()) {
      std::printf("%-11s %-38s not timed: failed the check\n", v.id.c_str(), v.tiles.c_str());
      continue;
    }
    const double ms = median_ms([&](int s) { return v.launch(forward_args(sets[s], out, lse), 0); }, o);
    std::printf("%-11s %-38s %9.3f %8.1f  %s\n", v.id.c_str(), v.tiles.c_str(), ms, flops / (ms * 1e9),
                v.resources ? v.resources().c_str() : "");
  }
}

}  // namespace

int main(int argc, char** argv) {
  return run_program(parse_options(argc, argv), variants<64>, variants<128>, check_variants, time_variants);
}
