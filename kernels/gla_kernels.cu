// The gated recurrence's launches (gla_launch.h): the chunk states, the scan
// over chunks, the chunk outputs (gla_kernels.cuh), in float or double.
#include <algorithm>

#include "gla_kernels.cuh"
#include "gla_launch.h"

namespace bla::kernels::detail {

namespace {

template <typename T>
cudaError_t launch(const GlaForwardArgs& raw, cudaStream_t stream) {
  using namespace gla;
  GlaArgs<T> a{static_cast<const T*>(raw.q), static_cast<const T*>(raw.k),
               static_cast<const T*>(raw.v), static_cast<const T*>(raw.g),
               static_cast<T*>(raw.out),     static_cast<T*>(raw.states),
               static_cast<T*>(raw.totals),  static_cast<T*>(raw.final_state),
               static_cast<T>(raw.scale),    dims_of(raw.shape)};
  const GlaDims& s = a.s;
  const int state_smem = static_cast<int>(sizeof(T) * gla_state_smem_elements(s));
  const int output_smem = static_cast<int>(sizeof(T) * gla_output_smem_elements(s));
  cudaError_t err = cudaFuncSetAttribute(reinterpret_cast<const void*>(&gla_chunk_state<T>),
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, state_smem);
  if (err != cudaSuccess) return err;
  err = cudaFuncSetAttribute(reinterpret_cast<const void*>(&gla_chunk_output<T>),
                             cudaFuncAttributeMaxDynamicSharedMemorySize, output_smem);
  if (err != cudaSuccess) return err;
  const dim3 chunks(s.nchunks, s.heads, s.batch);
  DEV_LAUNCH_ON(chunks, kGlaThreads, state_smem, stream, gla_chunk_state<T>)(a);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  const dim3 scan((s.dk * s.dv + kGlaThreads - 1) / kGlaThreads, s.heads, s.batch);
  DEV_LAUNCH_ON(scan, kGlaThreads, 0, stream, gla_state_scan<T>)(a);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  DEV_LAUNCH_ON(chunks, kGlaThreads, output_smem, stream, gla_chunk_output<T>)(a);
  return cudaGetLastError();
}

}  // namespace

int gla_chunks(int seq) { return (seq + gla::kGlaChunk - 1) / gla::kGlaChunk; }

size_t gla_smem_bytes(const GlaShape& shape, GlaDtype dtype) {
  const gla::GlaDims s = gla::dims_of(shape);
  const size_t element = dtype == GlaDtype::kFloat64 ? sizeof(double) : sizeof(float);
  return element * std::max(gla::gla_state_smem_elements(s), gla::gla_output_smem_elements(s));
}

cudaError_t gla_forward_launch(const GlaForwardArgs& args, cudaStream_t stream) {
  if (args.shape.seq < 1 || args.shape.dk < 1 || args.shape.dv < 1) return cudaErrorInvalidValue;
  return args.dtype == GlaDtype::kFloat64 ? launch<double>(args, stream) : launch<float>(args, stream);
}

}  // namespace bla::kernels::detail
