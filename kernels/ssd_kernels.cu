// The SSD recurrence's launches (ssd_launch.h): the chunk states, the scan
// over chunks, the chunk outputs (ssd_kernels.cuh), in chunks of 256 tokens
// (the fastest of 64, 128 and 256 at B=4 T=8192 H=16 in bf16,
// kernels/dev/README_ssd.md), for N, P in {64, 128}.
#include <algorithm>

#include "ssd_kernels.cuh"
#include "ssd_launch.h"

namespace bla::kernels::detail {

namespace {

constexpr int kChunk = 256;

ssd::SsdDims dims_of(const SsdShape& shape) {
  return {shape.batch,  shape.seq,     shape.heads, shape.head_dim,
          shape.groups, shape.d_state, kChunk,      ssd_chunks(shape.seq)};
}

template <typename Kernel>
cudaError_t allow_smem(Kernel* kernel, size_t bytes) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

template <typename T, typename Out, int N, int P>
cudaError_t launch_shape(const SsdForwardArgs& raw, cudaStream_t stream) {
  using namespace ssd;
  using Lay = TcLayout<T, N, P, kChunk>;
  const SsdArgs<T, Out> a{static_cast<const T*>(raw.x),
                          raw.log_decay,
                          raw.key_scale,
                          static_cast<const T*>(raw.Bm),
                          static_cast<const T*>(raw.Cm),
                          nullptr,
                          nullptr,
                          static_cast<Out*>(raw.y),
                          raw.final_state,
                          raw.states,
                          raw.totals,
                          dims_of(raw.shape)};
  const SsdDims& s = a.s;
  cudaError_t err = allow_smem(&ssd_chunk_state<T, Out, kChunk, N, P>, Lay::kStateBytes);
  if (err != cudaSuccess) return err;
  if ((err = allow_smem(&ssd_chunk_output<T, Out, kChunk, N, P>, Lay::kOutBytes)) != cudaSuccess) return err;
  DEV_LAUNCH_ON(dim3(s.nchunks, s.heads, s.batch), kThreads, Lay::kStateBytes, stream,
                ssd_chunk_state<T, Out, kChunk, N, P>)
  (a);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  const dim3 scan((s.d_state * s.head_dim + kThreads - 1) / kThreads, s.heads, s.batch);
  DEV_LAUNCH_ON(scan, kThreads, 0, stream, ssd_state_scan)(a.states, a.totals, nullptr, a.final_state, s);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  DEV_LAUNCH_ON(dim3(s.nchunks * (kChunk / kTcChunk), s.heads, s.batch), kThreads, Lay::kOutBytes, stream,
                ssd_chunk_output<T, Out, kChunk, N, P>)
  (a);
  return cudaGetLastError();
}

template <typename T, typename Out>
cudaError_t launch(const SsdForwardArgs& raw, cudaStream_t stream) {
  const int N = raw.shape.d_state, P = raw.shape.head_dim;
  if (N == 64 && P == 64) return launch_shape<T, Out, 64, 64>(raw, stream);
  if (N == 64 && P == 128) return launch_shape<T, Out, 64, 128>(raw, stream);
  if (N == 128 && P == 64) return launch_shape<T, Out, 128, 64>(raw, stream);
  if (N == 128 && P == 128) return launch_shape<T, Out, 128, 128>(raw, stream);
  return cudaErrorInvalidValue;
}

template <typename T>
size_t smem_bytes(int N, int P) {
  auto both = [](size_t a, size_t b) { return std::max(a, b); };
  if (N == 64 && P == 64)
    return both(ssd::TcLayout<T, 64, 64, kChunk>::kStateBytes, ssd::TcLayout<T, 64, 64, kChunk>::kOutBytes);
  if (N == 64 && P == 128)
    return both(ssd::TcLayout<T, 64, 128, kChunk>::kStateBytes, ssd::TcLayout<T, 64, 128, kChunk>::kOutBytes);
  if (N == 128 && P == 64)
    return both(ssd::TcLayout<T, 128, 64, kChunk>::kStateBytes, ssd::TcLayout<T, 128, 64, kChunk>::kOutBytes);
  if (N == 128 && P == 128)
    return both(ssd::TcLayout<T, 128, 128, kChunk>::kStateBytes, ssd::TcLayout<T, 128, 128, kChunk>::kOutBytes);
  return 0;
}

}  // namespace

int ssd_chunks(int seq) { return (seq + kChunk - 1) / kChunk; }

size_t ssd_smem_bytes(const SsdShape& shape, SsdDtype dtype) {
  return dtype == SsdDtype::kBFloat16 ? smem_bytes<__nv_bfloat16>(shape.d_state, shape.head_dim)
                                      : smem_bytes<float>(shape.d_state, shape.head_dim);
}

cudaError_t ssd_forward_launch(const SsdForwardArgs& args, cudaStream_t stream) {
  const SsdShape& s = args.shape;
  if (s.seq < 1 || s.groups < 1 || s.heads % s.groups != 0 || args.log_decay == nullptr) return cudaErrorInvalidValue;
  if (args.dtype == SsdDtype::kFloat32) return launch<float, float>(args, stream);
  return args.float_output ? launch<__nv_bfloat16, float>(args, stream)
                           : launch<__nv_bfloat16, __nv_bfloat16>(args, stream);
}

}  // namespace bla::kernels::detail
