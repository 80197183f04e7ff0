// The carry of the BLA chunked form in the modal basis (bla_chunk_launch.h,
// BlaCarryArgs). One block per (32 columns of D, head, batch, tensor) walks
// the chunks in order, its slice of the modal slots in shared memory:
//   - forward: write U_c, then U_{c+1} = B^C U_c + inject X_c;
//   - backward (chunks in reverse): dX_c = inject^T E_{c+1} (+ the chunk
//     step's grad), then E_c = dU_c + (B^C)^T E_{c+1}.
// B^C only couples a mode with its partner, so the update is elementwise;
// the products run on the chunk kernels' Product (tensor cores for bf16).
// Each step of the walk takes two chunks: one product gives both chunks'
// terms (forward: inject X_c and inject X_{c+1}; backward: inject^T E_{c+1}
// and inject^T E_c), so the walk has half the steps and syncs. Each step's
// tokens (or grads) are loaded a step ahead into registers.
#include "bla_chunk_device.cuh"

namespace bla::kernels::detail {
namespace {

constexpr int kSlice = 32;          // columns of D per block: one per lane
constexpr int kLdPair = 2 * kSlice + 4;  // row stride of the tiles: two chunks' slices side by side
constexpr int kPerThread = kBlaChunk / kBlaWarps;  // 8 rows of a chunk per thread

// A thread's share of a (rows x 32) slice tile: column = lane, rows warp + 8 e,
// so each warp-wide access is one row's 32 consecutive elements.
__device__ __forceinline__ int share_row(int e) { return threadIdx.x / 32 + kBlaWarps * e; }
__device__ __forceinline__ int share_col() { return threadIdx.x % 32; }

// The carry's tables in shared memory: inject (NP, C) with row stride C + 4,
// and B^C's per-mode weights and partners.
template <int NP>
struct CarryTables {
  static constexpr int kLdC = kBlaChunk + 4;
  static constexpr int kFloats = (NP * kLdC + 3 * NP + 7) / 8 * 8;  // inject, weight, cross, partner; 32 B-aligned end
  float* inject;
  float* weight;  // alpha of B^C
  float* cross;   // beta of B^C (forward) or of its transpose (backward)
  int* partner;

  __device__ __forceinline__ CarryTables(float* smem, const BlaChunkTablesView& tb, const float* beta) {
    inject = smem;
    weight = inject + NP * kLdC;
    cross = weight + NP;
    partner = reinterpret_cast<int*>(cross + NP);
    for (int i = threadIdx.x; i < NP * kBlaChunk; i += kBlaThreads)
      inject[(i / kBlaChunk) * kLdC + i % kBlaChunk] = tb.inject[i];
    const int last = (kBlaChunk - 1) * NP;
    for (int m = threadIdx.x; m < NP; m += kBlaThreads) {
      weight[m] = tb.alpha[last + m];
      cross[m] = beta[last + m];
      partner[m] = tb.partner[m];
    }
  }

  // (B^C y)[m] (or its transpose's) for column d of a slice tile y (row stride kLdPair).
  __device__ __forceinline__ float step(const float* y, int m, int d) const {
    const int p = partner[m];
    float out = weight[m] * y[m * kLdPair + d];
    if (p != m) out = fmaf(cross[m], y[p * kLdPair + d], out);
    return out;
  }
};

// A thread's 8 elements of a chunk's rows, raw: converted only where used, so
// a load stays in flight until then.
template <typename V>
struct Piece {
  V v[kPerThread];
};

// The thread's share of one chunk's rows of a (B, T, H, D) tensor whose
// tokens lie `row` elements apart (token_stride), column col0 + share_col();
// rows past the sequence read as zero.
template <typename T, int D>
struct TokenRows {
  const BlaChunkShape* s;
  int b, h, col;
  size_t row;

  // Element (token t, column col) and the step between a thread's rows.
  __device__ __forceinline__ size_t at(int t) const { return token_offset<D>(*s, row, b, h, t) + col; }
  __device__ __forceinline__ size_t share_step() const { return static_cast<size_t>(kBlaWarps) * row; }

  __device__ __forceinline__ void load(const T* x, int chunk, Piece<T>& out) const {
    const int t0 = chunk * kBlaChunk + share_row(0);
    const bool any = x != nullptr && chunk >= 0;
    const T* row = any ? x + at(t0) : x;
    const size_t step = share_step();
#pragma unroll
    for (int e = 0; e < kPerThread; ++e)
      out.v[e] = any && t0 + kBlaWarps * e < s->seq ? row[e * step] : from_float<T>(0.f);
  }
};

// The thread's share of the (NP x 32) slice of chunk c's modal slots.
template <int NP>
struct ModalShare {
  static constexpr int kRows = NP / kBlaWarps;  // rows share_row(0 .. kRows - 1)
  float v[kRows];
};

// The thread's first element of chunk c's modal slots, slot share_row(0) and
// column col; its slot share_row(e) is e * kBlaWarps * D further.
template <int D>
__device__ __forceinline__ size_t modal_share(const BlaChunkShape& s, int b, int h, int c, int col) {
  return modal_offset(s, b, h, c) + static_cast<size_t>(share_row(0)) * D + col;
}

template <typename T, int D, int NP>
__global__ void __launch_bounds__(kBlaThreads) bla_carry_forward_kernel(BlaCarryArgs args) {
  using Tables = CarryTables<NP>;
  constexpr int C = kBlaChunk;
  DEV_EXTERN_SHARED(float, smem);
  const Tables tables(smem, args.tables, args.tables.beta);
  float* xs = smem + Tables::kFloats;  // (C, 64): chunk c's tokens in columns 0..31, chunk c + 1's in 32..63
  float* states = xs + C * kLdPair;    // (NP, 64): U_c, then U_{c+2}, in columns 0..31; U_{c+1} in 32..63
  float* scratch = states + NP * kLdPair;

  const BlaChunkShape& s = args.shape;
  const int col0 = blockIdx.x * kSlice, h = blockIdx.y, b = blockIdx.z % s.batch;
  const BlaCarryTensor& io = args.tensors[blockIdx.z / s.batch];
  const TokenRows<T, D> rows{&s, b, h, col0 + share_col(), token_stride(io.x_row, s)};
  const T* x = static_cast<const T*>(io.x);
  const auto write_modal = [&](const float* state, int c) {
    float* out = io.modal + modal_share<D>(s, b, h, c, col0 + share_col());
#pragma unroll
    for (int e = 0; e < NP / kBlaWarps; ++e) out[e * kBlaWarps * D] = state[share_row(e) * kLdPair + share_col()];
  };

  // Two chunks a step: one product gives both chunks' injections, so the
  // walk has half the steps. Tokens are loaded a step ahead.
  Piece<T> now_x[2], next_x[2];
  for (int u = 0; u < 2; ++u) {
    rows.load(x, u, now_x[u]);
    rows.load(x, 2 + u, next_x[u]);
  }
  float* even = states;          // U_c (c even)
  float* odd = states + kSlice;  // U_{c+1}
  for (int i = threadIdx.x; i < NP * kLdPair; i += kBlaThreads) states[i] = 0.f;
  for (int c = 0; c < s.chunks; c += 2) {
#pragma unroll
    for (int u = 0; u < 2; ++u)
#pragma unroll
      for (int e = 0; e < kPerThread; ++e)
        xs[share_row(e) * kLdPair + kSlice * u + share_col()] = to_float(now_x[u].v[e]);
    __syncthreads();  // xs and U_c complete
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      now_x[u] = next_x[u];
      rows.load(x, c + 4 + u, next_x[u]);
    }
    write_modal(even, c);
    if (c + 1 < s.chunks) {  // block-uniform
      Product<T, NP, 2 * kSlice> g(scratch);  // [inject X_c, inject X_{c+1}]
      g.zero();
      g.template add_product<C, kTable, kFromBf16>(tables.inject, Tables::kLdC, 1, xs, kLdPair, 1);
      g.template for_each_in_cols<0, kSlice>(
          [&](int m, int d, float value) { odd[m * kLdPair + d] = tables.step(even, m, d) + value; });
      __syncthreads();  // U_{c+1} complete; U_c no longer read
      write_modal(odd, c + 1);
      if (c + 2 < s.chunks) {
        g.template for_each_in_cols<kSlice, 2 * kSlice>([&](int m, int d, float value) {
          even[m * kLdPair + d - kSlice] = tables.step(odd, m, d - kSlice) + value;
        });
      }
    }
    __syncthreads();  // xs free, U_{c+2} complete
  }
}

template <typename T, int D, int NP>
__global__ void __launch_bounds__(kBlaThreads) bla_carry_backward_kernel(BlaCarryArgs args) {
  using Tables = CarryTables<NP>;
  using Share = ModalShare<NP>;
  constexpr int C = kBlaChunk;
  DEV_EXTERN_SHARED(float, smem);
  const Tables tables(smem, args.tables, args.tables.beta_t);
  float* dxs = smem + Tables::kFloats;  // (C, 64): dX_c in columns 0..31, dX_{c-1} in 32..63
  float* states = dxs + C * kLdPair;    // (NP, 64): E_{c+1} in columns 0..31, E_c in 32..63
  float* scratch = states + NP * kLdPair;

  const BlaChunkShape& s = args.shape;
  const int col0 = blockIdx.x * kSlice, h = blockIdx.y, b = blockIdx.z % s.batch;
  const BlaCarryTensor& io = args.tensors[blockIdx.z / s.batch];
  const TokenRows<T, D> rows{&s, b, h, col0 + share_col(), token_stride(0, s)};  // dX and its addend: contiguous
  const T* add = static_cast<const T*>(io.grad_add);
  T* grad_x = static_cast<T*>(io.grad_x);
  const auto load_modal = [&](int c, Share& out) {
    if (c < 0) return;
    const float* in = io.grad_modal + modal_share<D>(s, b, h, c, col0 + share_col());
#pragma unroll
    for (int e = 0; e < Share::kRows; ++e) out.v[e] = in[e * kBlaWarps * D];
  };
  // E <- dU + (B^C)^T E' for this thread's share, E' in columns `from`, E in columns `to` of states.
  const auto recur = [&](const Share& grad, int from, int to) {
#pragma unroll
    for (int e = 0; e < Share::kRows; ++e) {
      const int m = share_row(e);
      states[m * kLdPair + to + share_col()] = grad.v[e] + tables.step(states + from, m, share_col());
    }
  };
  // dX of chunk c (columns `at` of dxs) plus its addend, to grad_x.
  const auto write_grad = [&](int c, int at, const Piece<T>& addend) {
    T* out = grad_x + rows.at(c * C + share_row(0));
    const size_t step = rows.share_step();
#pragma unroll
    for (int e = 0; e < kPerThread; ++e) {
      const int r = share_row(e);
      if (c * C + r < s.seq) out[e * step] = from_float<T>(dxs[r * kLdPair + at + share_col()] + to_float(addend.v[e]));
    }
  };

  // Two chunks a step, c and c - 1: one product gives dX_c = inject^T E_{c+1}
  // and dX_{c-1} = inject^T E_c. dU and the addends are loaded a step ahead.
  Share grad_now[2], grad_next[2];  // dU of chunks c, c - 1; then c - 2, c - 3
  Piece<T> add_now[2], add_next[2];
  const int last = s.chunks - 1;
  for (int u = 0; u < 2; ++u) {
    load_modal(last - u, grad_now[u]);
    rows.load(add, last - u, add_now[u]);
    load_modal(last - 2 - u, grad_next[u]);
    rows.load(add, last - 2 - u, add_next[u]);
  }
  for (int i = threadIdx.x; i < NP * kLdPair; i += kBlaThreads) states[i] = 0.f;  // E_{nc} = 0
  __syncthreads();
  for (int c = last; c >= 0; c -= 2) {
    recur(grad_now[0], 0, kSlice);  // E_c
    __syncthreads();  // E_c complete
    {
      Product<T, C, 2 * kSlice> g(scratch);
      g.zero();
      g.template add_product<NP, kTable, kRound>(tables.inject, 1, Tables::kLdC, states, kLdPair, 1);
      g.store(dxs, kLdPair);
    }
    __syncthreads();  // dxs complete; E_{c+1} no longer read
    if (c >= 1) recur(grad_now[1], kSlice, 0);  // E_{c-1}, where E_{c+1} was
    write_grad(c, 0, add_now[0]);
    if (c >= 1) write_grad(c - 1, kSlice, add_now[1]);
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      grad_now[u] = grad_next[u];
      add_now[u] = add_next[u];
      load_modal(c - 4 - u, grad_next[u]);
      rows.load(add, c - 4 - u, add_next[u]);
    }
    __syncthreads();  // dxs free, E_{c-1} complete
  }
}

// Tables, one (C, 64) tile of two chunks, the states (two (NP, 32) tiles
// forward, one (NP, 64) backward: the same floats but for padding) and the
// product scratch.
template <int NP>
constexpr size_t carry_bytes() {
  return sizeof(float) * (CarryTables<NP>::kFloats + kBlaChunk * kLdPair + NP * kLdPair + BlaLayout<64, NP>::kScratch);
}

// Blocks: (D / 32, heads, batch x the two tensors).
dim3 carry_grid(const BlaChunkShape& s) { return dim3(s.dim / kSlice, s.heads, 2 * s.batch); }

template <typename T, bool kForward>
cudaError_t dispatch(const BlaCarryArgs& args, cudaStream_t stream) {
  return for_compiled_shape(args.shape.dim, args.shape.padded, [&](auto dim, auto padded) {
    constexpr int D = dim(), NP = padded();
    if constexpr (kForward)
      return launch_blocks(bla_carry_forward_kernel<T, D, NP>, carry_bytes<NP>(), carry_grid(args.shape), stream, args);
    else
      return launch_blocks(bla_carry_backward_kernel<T, D, NP>, carry_bytes<NP>(), carry_grid(args.shape), stream,
                           args);
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
