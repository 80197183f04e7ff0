// The carry of the BLA chunked form in the modal basis (bla_chunk_launch.h,
// BlaCarryArgs), as two kernels each way:
//   - inject / eject: per (chunk, head, batch), G_c = inject X_c and
//     dX_c = inject^T E_{c+1} (+ the chunk step's grad), products on the
//     chunk kernels' Product (tensor cores for bf16);
//   - scan: per (batch, head, mode pair, column) a thread walks the chunks,
//     in place on the (B, H, nc, NP, D) buffer; B^C only mixes a mode with
//     its partner, so the threads never talk.
#include "bla_chunk_device.cuh"

namespace bla::kernels::detail {
namespace {

// modal[c] = inject X_c (the chunk's tokens into the slots after it).
template <typename T, int D, int NP>
__global__ void __launch_bounds__(kBlaThreads) bla_inject_kernel(BlaCarryArgs args) {
  using L = BlaLayout<D, NP>;
  extern __shared__ __align__(128) float smem[];
  float* xs = smem;                 // (C, D)
  float* scratch = xs + L::kTileD;  // tensor-core epilogues
  const BlaChunkShape& s = args.shape;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  load_rows<T, D>(xs, static_cast<const T*>(args.x), s, b, h, c * kBlaChunk);
  __syncthreads();
  Product<T, NP, D> g(scratch);
  g.zero();
  g.template add_product<kBlaChunk>(args.tables.inject, kBlaChunk, 1, xs, L::kLdD, 1);
  float* out = args.modal + modal_offset(s, b, h, c);
  g.for_each([&](int m, int d, float value) { out[m * D + d] = value; });
}

// grad_x = grad_add + inject^T E_{c+1}, E_{c+1} in grad_modal[c] after the reverse scan.
template <typename T, int D, int NP>
__global__ void __launch_bounds__(kBlaThreads) bla_eject_kernel(BlaCarryArgs args) {
  extern __shared__ __align__(128) float smem[];
  const BlaChunkShape& s = args.shape;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const float* e = args.grad_modal + modal_offset(s, b, h, c);  // (NP, D)
  Product<T, kBlaChunk, D> g(smem);
  g.zero();
  g.template add_product<NP>(args.tables.inject, 1, kBlaChunk, e, D, 1);
  const T* add = static_cast<const T*>(args.grad_add);
  T* out = static_cast<T*>(args.grad_x);
  g.for_each([&](int r, int d, float value) {
    const int t = c * kBlaChunk + r;
    if (t >= s.seq) return;
    const size_t at = ((static_cast<size_t>(b) * s.seq + t) * s.heads + h) * D + d;
    out[at] = from_float<T>(value + (add != nullptr ? to_float(add[at]) : 0.f));
  });
}

// The thread of (b, h, mode m, column d); a pair's lower mode does both.
struct ScanLane {
  int b, h, m, p, d;
  bool active;
};

__device__ __forceinline__ ScanLane scan_lane(const BlaChunkShape& s, const int* partner) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  ScanLane l;
  l.d = static_cast<int>(i % s.dim);
  l.m = static_cast<int>((i / s.dim) % s.padded);
  const long long bh = i / (static_cast<long long>(s.dim) * s.padded);
  l.h = static_cast<int>(bh % s.heads);
  l.b = static_cast<int>(bh / s.heads);
  l.active = l.b < s.batch && partner[l.m] >= l.m;
  l.p = l.active ? partner[l.m] : l.m;
  return l;
}

// In place: buffer[c] = G_c -> U_c (the slots before chunk c).
__global__ void __launch_bounds__(kBlaThreads) bla_scan_forward_kernel(BlaCarryArgs args) {
  const BlaChunkShape& s = args.shape;
  const BlaChunkTablesView& tb = args.tables;
  const ScanLane l = scan_lane(s, tb.partner);
  if (!l.active) return;
  const int row = (kBlaChunk - 1) * s.padded;  // B^C
  const float am = tb.alpha[row + l.m], bm = tb.beta[row + l.m];
  const float ap = tb.alpha[row + l.p], bp = tb.beta[row + l.p];
  const bool pair = l.p != l.m;
  float* base = args.modal + modal_offset(s, l.b, l.h, 0) + l.d;
  const size_t step = static_cast<size_t>(s.padded) * s.dim;
  float um = 0.f, up = 0.f;
  float gm = base[l.m * s.dim], gp = pair ? base[l.p * s.dim] : 0.f;
  for (int c = 0; c < s.chunks; ++c) {
    float* at = base + c * step;
    float next_m = 0.f, next_p = 0.f;
    if (c + 1 < s.chunks) {  // prefetch G_{c+1} before this chunk's stores
      next_m = at[step + l.m * s.dim];
      if (pair) next_p = at[step + l.p * s.dim];
    }
    at[l.m * s.dim] = um;
    if (pair) at[l.p * s.dim] = up;
    const float new_m = am * um + (pair ? bm * up : 0.f) + gm;
    const float new_p = ap * up + bp * um + gp;
    um = new_m;
    up = new_p;
    gm = next_m;
    gp = next_p;
  }
}

// In place: buffer[c] = dU_c -> E_{c+1} (the grad of the slots after chunk c).
__global__ void __launch_bounds__(kBlaThreads) bla_scan_backward_kernel(BlaCarryArgs args) {
  const BlaChunkShape& s = args.shape;
  const BlaChunkTablesView& tb = args.tables;
  const ScanLane l = scan_lane(s, tb.partner);
  if (!l.active) return;
  const int row = (kBlaChunk - 1) * s.padded;  // (B^C)^T
  const float am = tb.alpha[row + l.m], bm = tb.beta_t[row + l.m];
  const float ap = tb.alpha[row + l.p], bp = tb.beta_t[row + l.p];
  const bool pair = l.p != l.m;
  float* base = args.grad_modal + modal_offset(s, l.b, l.h, 0) + l.d;
  const size_t step = static_cast<size_t>(s.padded) * s.dim;
  float em = 0.f, ep = 0.f;
  float* last = base + (s.chunks - 1) * step;
  float gm = last[l.m * s.dim], gp = pair ? last[l.p * s.dim] : 0.f;
  for (int c = s.chunks - 1; c >= 0; --c) {
    float* at = base + c * step;
    float next_m = 0.f, next_p = 0.f;
    if (c > 0) {
      next_m = at[-static_cast<ptrdiff_t>(step) + l.m * s.dim];
      if (pair) next_p = at[-static_cast<ptrdiff_t>(step) + l.p * s.dim];
    }
    at[l.m * s.dim] = em;
    if (pair) at[l.p * s.dim] = ep;
    const float new_m = gm + am * em + (pair ? bm * ep : 0.f);
    const float new_p = gp + ap * ep + bp * em;
    em = new_m;
    ep = new_p;
    gm = next_m;
    gp = next_p;
  }
}

unsigned scan_blocks(const BlaChunkShape& s) {
  const long long lanes = static_cast<long long>(s.batch) * s.heads * s.padded * s.dim;
  return static_cast<unsigned>((lanes + kBlaThreads - 1) / kBlaThreads);
}

template <typename T, int D, int NP>
cudaError_t carry_forward(const BlaCarryArgs& args, cudaStream_t stream) {
  using L = BlaLayout<D, NP>;
  constexpr size_t bytes = sizeof(float) * (L::kTileD + L::kScratch);
  const cudaError_t err = launch_blocks(bla_inject_kernel<T, D, NP>, bytes, chunk_grid(args.shape), stream, args);
  if (err != cudaSuccess) return err;
  bla_scan_forward_kernel<<<scan_blocks(args.shape), kBlaThreads, 0, stream>>>(args);
  return cudaGetLastError();
}

template <typename T, int D, int NP>
cudaError_t carry_backward(const BlaCarryArgs& args, cudaStream_t stream) {
  bla_scan_backward_kernel<<<scan_blocks(args.shape), kBlaThreads, 0, stream>>>(args);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  constexpr size_t bytes = sizeof(float) * BlaLayout<D, NP>::kScratch;
  return launch_blocks(bla_eject_kernel<T, D, NP>, bytes, chunk_grid(args.shape), stream, args);
}

template <typename T, bool kForward>
cudaError_t dispatch(const BlaCarryArgs& args, cudaStream_t stream) {
  return for_compiled_shape(args.shape.dim, args.shape.padded, [&](auto dim, auto padded) {
    return kForward ? carry_forward<T, dim(), padded()>(args, stream) : carry_backward<T, dim(), padded()>(args, stream);
  });
}

}  // namespace

cudaError_t bla_carry_forward_launch(const BlaCarryArgs& args, cudaStream_t stream) {
  if (args.dtype == BlaDtype::kBFloat16) return dispatch<__nv_bfloat16, true>(args, stream);
  return dispatch<float, true>(args, stream);
}

cudaError_t bla_carry_backward_launch(const BlaCarryArgs& args, cudaStream_t stream) {
  if (args.dtype == BlaDtype::kBFloat16) return dispatch<__nv_bfloat16, false>(args, stream);
  return dispatch<float, false>(args, stream);
}

}  // namespace bla::kernels::detail
