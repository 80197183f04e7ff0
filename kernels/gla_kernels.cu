// The gated recurrence's launches (gla_launch.h): the chunk states, the scan
// over chunks, the chunk outputs, in float or double (gla_kernels.cuh) or on
// tensor cores (gla_tensor_core_kernels.cuh); and the log gates' gradient
// (gla_gate_gradient.cuh).
#include <algorithm>
#include <type_traits>

#include "gla_gate_gradient.cuh"
#include "gla_kernels.cuh"
#include "gla_launch.h"
#include "gla_tensor_core_kernels.cuh"

namespace bla::kernels::detail {

namespace {

// Strides, contiguous heads-first (B, H, T, width) where all are 0.
GlaStrides resolved(GlaStrides st, int heads, int seq, int width) {
  if (st.batch == 0 && st.head == 0 && st.token == 0)
    st = {static_cast<long long>(heads) * seq * width, static_cast<long long>(seq) * width, width};
  return st;
}
gla::GlaIn input(const GlaInput& x, int heads, int seq, int width) {
  const GlaStrides st = resolved(x.strides, heads, seq, width);
  return gla::GlaIn{{x.data, st.batch, st.head, st.token}, x.element};
}

template <typename T>
cudaError_t launch_gate_gradient(const GlaGateGradientArgs& raw, cudaStream_t stream) {
  using namespace gla;
  const int H = raw.heads, L = raw.seq, W = raw.width;
  const GlaStrides dg = resolved(raw.dg_strides, H, L, W);
  GlaGateArgs<T> a{input(raw.a, H, L, W),
                   input(raw.da, H, L, W),
                   input(raw.c, H, L, W),
                   input(raw.dc, H, L, W),
                   {{raw.dg, dg.batch, dg.head, dg.token}, raw.dg_element},
                   static_cast<double*>(raw.totals),
                   raw.batch,
                   H,
                   L,
                   W,
                   gate_segments(L)};
  const dim3 grid(static_cast<unsigned>((W + 31) / 32 * a.segments), H, raw.batch);
  DEV_LAUNCH_ON(grid, kGateThreads, 0, stream, gla_gate_segment_totals<T>)(a);
  DEV_LAUNCH_ON(grid, kGateThreads, 0, stream, gla_gate_gradient<T>)(a);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch(const GlaForwardArgs& raw, cudaStream_t stream) {
  using namespace gla;
  const GlaShape& shape = raw.shape;
  const int dg = shape.value_axis ? shape.dv : shape.dk, H = shape.heads, L = shape.seq;
  const GlaStrides out = resolved(raw.out_strides, H, L, shape.dv);
  GlaArgs<T> a{input(raw.q, H, L, shape.dk),
               input(raw.k, H, L, shape.dk),
               input(raw.v, H, L, shape.dv),
               input(raw.g, H, L, dg),
               {static_cast<T*>(raw.out), out.batch, out.head, out.token},
               static_cast<T*>(raw.states),
               static_cast<T*>(raw.totals),
               static_cast<T*>(raw.final_state),
               {},
               static_cast<T>(raw.scale),
               dims_of(shape)};
  const GlaDims& s = a.s;
  const bool given = raw.entering != nullptr;
  if (given) {
    const GlaStateStrides& e = raw.entering_strides;
    a.entering = {static_cast<const T*>(raw.entering), e.batch, e.head, e.chunk, e.row, e.col};
  } else {
    const long long chunk = static_cast<long long>(s.dk) * s.dv;
    a.entering = {a.states, s.heads * s.nchunks * chunk, s.nchunks * chunk, chunk, s.dv, 1};
  }
  using Kernel = void (*)(GlaArgs<T>);
  Kernel state_kernel = &gla_chunk_state<T>, output_kernel = &gla_chunk_output<T>;
  size_t state_smem = sizeof(T) * gla_state_smem_elements(s), output_smem = sizeof(T) * gla_output_smem_elements(s);
  if constexpr (std::is_same_v<T, float>) {
    if (raw.tensor_cores && tensor_cores_fit(s)) {
      state_kernel = &gla_chunk_state_tc;
      output_kernel = &gla_chunk_output_tc;
      state_smem = sizeof(float) * gla_tc_state_smem_elements();
      output_smem = sizeof(float) * gla_tc_output_smem_elements();
    }
  }
  cudaError_t err = cudaFuncSetAttribute(reinterpret_cast<const void*>(state_kernel),
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(state_smem));
  if (err != cudaSuccess) return err;
  err = cudaFuncSetAttribute(reinterpret_cast<const void*>(output_kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(output_smem));
  if (err != cudaSuccess) return err;
  const dim3 chunks(s.nchunks, s.heads, s.batch);
  if (!given) {
    DEV_LAUNCH_ON(chunks, kGlaThreads, state_smem, stream, state_kernel)(a);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
    const dim3 scan((s.dk * s.dv + kGlaThreads - 1) / kGlaThreads, s.heads, s.batch);
    DEV_LAUNCH_ON(scan, kGlaThreads, 0, stream, gla_state_scan<T>)(a);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
  }
  DEV_LAUNCH_ON(chunks, kGlaThreads, output_smem, stream, output_kernel)(a);
  return cudaGetLastError();
}

}  // namespace

int gla_chunks(int seq) { return (seq + gla::kGlaChunk - 1) / gla::kGlaChunk; }

size_t gla_gate_workspace_elements(int batch, int heads, int seq, int width) {
  return static_cast<size_t>(batch) * heads * gla::gate_segments(seq) * width;
}

size_t gla_smem_bytes(const GlaShape& shape, GlaDtype dtype) {
  const gla::GlaDims s = gla::dims_of(shape);
  const size_t element = dtype == GlaDtype::kFloat64 ? sizeof(double) : sizeof(float);
  size_t bytes = element * std::max(gla::gla_state_smem_elements(s), gla::gla_output_smem_elements(s));
  if (dtype == GlaDtype::kFloat32 && gla::tensor_cores_fit(s))
    bytes = std::max(bytes, sizeof(float) * gla::gla_tc_output_smem_elements());
  return bytes;
}

cudaError_t gla_gate_gradient_launch(const GlaGateGradientArgs& args, cudaStream_t stream) {
  if (args.seq < 1 || args.width < 1) return cudaErrorInvalidValue;
  return args.dtype == GlaDtype::kFloat64 ? launch_gate_gradient<double>(args, stream)
                                          : launch_gate_gradient<float>(args, stream);
}

cudaError_t gla_forward_launch(const GlaForwardArgs& args, cudaStream_t stream) {
  if (args.shape.seq < 1 || args.shape.dk < 1 || args.shape.dv < 1) return cudaErrorInvalidValue;
  return args.dtype == GlaDtype::kFloat64 ? launch<double>(args, stream) : launch<float>(args, stream);
}

}  // namespace bla::kernels::detail
