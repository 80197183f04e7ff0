// Blurry Window Attention: the token-by-token reference, the chunked two-pass
// training form and the decode step (docs/bla.md, "Definition"). Tensors arrive as
// (B, T, H, D); internally everything is per head, (B, H, ..., D).
#include "bla/ops/bla.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bla/ops/attention.h"
#include "bla/ops/bla_modal.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/bla.h"
#include "bla_kernels/swa.h"
#endif

namespace bla::ops {

namespace {

[[noreturn]] void throw_input_error(const std::string& where, const std::string& message) {
  throw std::invalid_argument("bla: " + where + ": " + message);
}

// q, k: (B, T, H, Dk); v: (B, T, H, Dv), one floating dtype and device.
void check_sequence_inputs(const std::string& where, const at::Tensor& q, const at::Tensor& k,
                           const at::Tensor& v) {
  if (!q.defined() || !k.defined() || !v.defined()) throw_input_error(where, "q, k and v must be defined tensors");
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) {
    std::ostringstream os;
    os << "q, k, v must be (batch, seq, heads, head_dim); got q " << q.sizes() << ", k " << k.sizes() << ", v "
       << v.sizes();
    throw_input_error(where, os.str());
  }
  for (int64_t d = 0; d < 3; ++d) {
    if (q.size(d) != k.size(d) || q.size(d) != v.size(d)) {
      std::ostringstream os;
      os << "q, k, v must agree on (batch, seq, heads); got q " << q.sizes() << ", k " << k.sizes() << ", v "
         << v.sizes();
      throw_input_error(where, os.str());
    }
  }
  if (q.size(3) != k.size(3)) {
    std::ostringstream os;
    os << "q and k must have the same head_dim; got " << q.size(3) << " and " << k.size(3);
    throw_input_error(where, os.str());
  }
  if (!at::isFloatingType(q.scalar_type()) || q.scalar_type() != k.scalar_type() ||
      q.scalar_type() != v.scalar_type()) {
    std::ostringstream os;
    os << "q, k, v must share one floating dtype; got " << q.scalar_type() << ", " << k.scalar_type() << ", "
       << v.scalar_type();
    throw_input_error(where, os.str());
  }
  if (q.device() != k.device() || q.device() != v.device())
    throw_input_error(where, "q, k, v must be on the same device");
}

// Half and bfloat16 inputs are computed in float32: the powers A^tau and the
// softmax over slots lose too much in 8 mantissa bits, and the LibTorch form
// is the yardstick for the CUDA kernel's bf16 path (docs/bla.md, "What the tests
// must show", last item).
at::ScalarType compute_type(at::ScalarType input) {
  return (input == at::kHalf || input == at::kBFloat16) ? at::kFloat : input;
}

double resolve_scale(const BlaOptions& opt, int64_t dk) {
  return opt.scale > 0.0 ? opt.scale : 1.0 / std::sqrt(static_cast<double>(dk));
}

// True where slot j is older than the sequence: a_j = j W / N > t. Compared as
// j W > t N in integers so N == W and integer r are exact. (T, N) bool.
at::Tensor age_mask(int64_t first_position, int64_t length, const BlaOptions& opt, at::Device device) {
  const auto longs = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor t = at::arange(first_position, first_position + length, longs);
  const at::Tensor j = at::arange(opt.slots, longs);
  return (j * opt.window).unsqueeze(0) > (t * opt.slots).unsqueeze(1);
}

// Whether any slot is still masked at (and after) `position`.
bool mask_needed(int64_t position, const BlaOptions& opt) {
  return (opt.slots - 1) * opt.window > position * opt.slots;
}

// (B, T, H, D) -> (B, H, nc, C, D), zero-padding T up to nc * C. Padded
// queries are sliced off the output; padded keys and values never reach a
// real token (they come after all of them) nor the final state.
at::Tensor split_chunks(const at::Tensor& x, int64_t chunk) {
  const int64_t length = x.size(1), chunks = (length + chunk - 1) / chunk;
  at::Tensor per_head = x.permute({0, 2, 1, 3});
  if (chunks * chunk != length) per_head = at::constant_pad_nd(per_head, {0, 0, 0, chunks * chunk - length});
  return per_head.reshape({x.size(0), x.size(2), chunks, chunk, x.size(3)});
}

// The chunked form with an optional incoming state (empty slots when the
// tensors are undefined) and the outgoing state when `final_state` is set.
at::Tensor chunked_forward(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                           const BlaOptions& opt, const at::Tensor& initial_keys, const at::Tensor& initial_values,
                           int64_t position, BlaState* final_state) {
  const at::ScalarType type = compute_type(q_in.scalar_type());
  const at::Tensor q = q_in.to(type), k = k_in.to(type), v = v_in.to(type);
  const int64_t batch = q.size(0), length = q.size(1), heads = q.size(2);
  const int64_t dk = q.size(3), dv = v.size(3);
  const int64_t n = opt.slots, c = opt.chunk;
  const BlaOperators ops = bla_operators(opt.window, n, c, type, q.device());

  const at::Tensor keys_in =
      initial_keys.defined() ? initial_keys.to(type) : at::zeros({batch, heads, n, dk}, q.options());
  const at::Tensor values_in =
      initial_values.defined() ? initial_values.to(type) : at::zeros({batch, heads, n, dv}, v.options());
  if (length == 0) {
    if (final_state) *final_state = BlaState{keys_in, values_in, position};
    return at::empty({batch, 0, heads, dv}, v_in.options());
  }

  const int64_t chunks = (length + c - 1) / c;
  const int64_t padded = chunks * c;
  const double scale = resolve_scale(opt, dk);
  const at::Tensor qc = split_chunks(q, c) * scale;
  const at::Tensor kc = split_chunks(k, c);
  const at::Tensor vc = split_chunks(v, c);

  const at::Tensor& causal_kernel = ops.causal_kernel;             // (C, C, N): h(i - s), s <= i
  const at::Tensor powers_ahead = ops.powers.slice(0, 1, c + 1);   // (C, N, N): A^(i+1)

  const at::Tensor slot_keys = bla_chunk_start_slots(keys_in, kc, ops);      // (B, H, nc, N, Dk)
  const at::Tensor slot_values = bla_chunk_start_slots(values_in, vc, ops);  // (B, H, nc, N, Dv)
  const at::Tensor last_keys = slot_keys.select(2, chunks - 1);
  const at::Tensor last_values = slot_values.select(2, chunks - 1);

  // Pass 1, scores: z_i = A^(i+1) (S_K q_i) + sum_{s<=i} h(i-s) <q_i, k_s>.
  const at::Tensor incoming = at::matmul(qc, slot_keys.transpose(-1, -2));  // (B, H, nc, C, N): S_K q_i
  const at::Tensor scores_inter = at::einsum("inm,bhcim->bhcin", {powers_ahead, incoming});
  const at::Tensor query_key = at::matmul(qc, kc.transpose(-1, -2));  // (B, H, nc, C, C)
  const at::Tensor scores_intra = at::einsum("bhcis,isn->bhcin", {query_key, causal_kernel});
  at::Tensor scores = scores_inter + scores_intra;
  if (mask_needed(position, opt)) {
    const at::Tensor mask = age_mask(position, padded, opt, q.device()).reshape({chunks, c, n});
    scores = scores.masked_fill(mask, -std::numeric_limits<double>::infinity());
  }
  const at::Tensor weights = at::softmax(scores, -1);  // p_i over the N slots

  // Pass 2, output: o_i = S_V^T (A^(i+1))^T p_i + sum_{s<=i} <p_i, h(i-s)> v_s.
  const at::Tensor weights_back = at::einsum("inm,bhcin->bhcim", {powers_ahead, weights});
  const at::Tensor out_inter = at::matmul(weights_back, slot_values);
  const at::Tensor weights_token = at::einsum("bhcin,isn->bhcis", {weights, causal_kernel});
  const at::Tensor out_intra = at::matmul(weights_token, vc);
  const at::Tensor out = (out_inter + out_intra).reshape({batch, heads, padded, dv});

  if (final_state) {
    // The state after the last real token: L <= C tokens of the last chunk
    // past its incoming slots, S = A^L S_in + sum_{s<L} h(L-1-s) x_s^T.
    const int64_t last = length - (chunks - 1) * c;
    const at::Tensor power_last = ops.powers.select(0, last);
    const at::Tensor kernel_last = ops.kernel.slice(0, 0, last).flip(0);
    const auto advance = [&](const at::Tensor& slots_in, const at::Tensor& xc) {
      const at::Tensor tokens = xc.select(2, chunks - 1).slice(2, 0, last);  // (B, H, L, D)
      return at::matmul(power_last, slots_in) + at::einsum("sn,bhsd->bhnd", {kernel_last, tokens});
    };
    final_state->keys = advance(last_keys, kc);
    final_state->values = advance(last_values, vc);
    final_state->position = position + length;
  }
  return out.slice(2, 0, length).permute({0, 2, 1, 3}).contiguous().to(v_in.scalar_type());
}

#ifdef BLA_HAVE_CUDA_KERNELS
// The fused kernels' tables for (W, N) on `device`, or null with *why when
// the modal form is not usable for them (cached either way).
std::shared_ptr<const kernels::BlaChunkTables> kernel_tables(int64_t window, int64_t slots, at::Device device,
                                                             std::string* why) {
  using Key = std::tuple<int64_t, int64_t, int>;
  struct Entry {
    std::shared_ptr<const kernels::BlaChunkTables> tables;
    std::string why;
  };
  static std::mutex mutex;
  static std::map<Key, Entry> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  const Key key{window, slots, static_cast<int>(device.index())};
  auto it = cache.find(key);
  if (it == cache.end()) {
    Entry entry;
    if (bla_modal_supported(window, slots, kernels::kBlaKernelChunk, &entry.why)) {
      const BlaModalOperators modal = make_bla_modal_operators(window, slots, kernels::kBlaKernelChunk);
      const BlaOperators ops = make_bla_operators(window, slots, kernels::kBlaKernelChunk);
      entry.tables = std::make_shared<const kernels::BlaChunkTables>(
          kernels::make_bla_chunk_tables(window, slots, ops.kernel, modal.basis, modal.basis_inverse, modal.alpha,
                                         modal.beta, modal.beta_t, modal.partner, device));
    }
    it = cache.emplace(key, std::move(entry)).first;
  }
  if (why != nullptr) *why = it->second.why;
  return it->second.tables;
}
#endif

// Which kernel runs the chunked form from empty slots on CUDA tensors.
enum class KernelRoute { kNone, kSlidingWindow, kFused };

KernelRoute kernel_route(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlaOptions& opt,
                         std::string* why) {
  const auto none = [&](const std::string& text) {
    if (why != nullptr) *why = text;
    return KernelRoute::kNone;
  };
  if (!q.is_cuda()) return none("q, k and v must be CUDA tensors");
#ifdef BLA_HAVE_CUDA_KERNELS
  if (!kernels_enabled()) return none("turned off by BLA_KERNELS=0");
  // N == W is exactly SWA(W) (docs/bla.md, "N = W"), the age mask included.
  std::string reason;
  if (opt.slots == opt.window) {
    if (!kernels::swa_supported(q, k, v, opt.window, &reason)) return none(reason);
    return KernelRoute::kSlidingWindow;
  }
  if (!kernels::bla_chunk_supported(q, k, v, opt.slots, &reason)) return none(reason);
  if (!kernel_tables(opt.window, opt.slots, q.device(), &reason)) return none(reason);
  return KernelRoute::kFused;
#else
  return none("bla-train was built without its CUDA kernels");
#endif
}

void check_state(const std::string& where, const BlaState& state, const at::Tensor& q, const at::Tensor& v,
                 const BlaOptions& opt) {
  const int64_t batch = q.size(0), heads = q.dim() == 4 ? q.size(2) : q.size(1);
  const int64_t dk = q.size(-1), dv = v.size(-1);
  const std::vector<int64_t> keys_shape{batch, heads, opt.slots, dk}, values_shape{batch, heads, opt.slots, dv};
  if (!state.keys.defined() || !state.values.defined() || state.keys.sizes().vec() != keys_shape ||
      state.values.sizes().vec() != values_shape) {
    std::ostringstream os;
    os << "state must hold keys " << at::IntArrayRef(keys_shape) << " and values " << at::IntArrayRef(values_shape)
       << " (batch, heads, slots, head_dim); got keys "
       << (state.keys.defined() ? state.keys.sizes() : at::IntArrayRef{}) << ", values "
       << (state.values.defined() ? state.values.sizes() : at::IntArrayRef{})
       << ": make it with bla_initial_state and the same options";
    throw_input_error(where, os.str());
  }
  if (state.position < 0) throw_input_error(where, "state position must be >= 0");
}

}  // namespace

at::Tensor bla_chunk_start_slots(const at::Tensor& initial, const at::Tensor& chunks, const BlaOperators& ops) {
  // S_in[c+1] = A^C S_in[c] + sum_s h(C-1-s) x_s^T. The local sums of every
  // full chunk are one einsum; the scan over chunks is a Hillis-Steele scan in
  // ceil(log2(nc)) rounds (each one batched matmul over all chunks) instead of
  // nc - 1 small serial ones: on a GPU the serial loop was bound by kernel
  // launches, forward and backward.
  const int64_t count = chunks.size(2);
  if (count == 1) return initial.unsqueeze(2);
  const at::Tensor power_chunk = ops.powers.select(0, ops.chunk);  // A^C
  const at::Tensor carry_kernel = ops.kernel.flip(0);              // (C, N): h(C-1-s)
  // y[0] = S_0, y[c] = local sum of chunk c-1; afterwards y[c] = S_in[c].
  at::Tensor y = at::cat(
      {initial.unsqueeze(2), at::einsum("sn,bhcsd->bhcnd", {carry_kernel, chunks.slice(2, 0, count - 1)})}, 2);
  at::Tensor jump = power_chunk;  // (A^C)^(2^round)
  for (int64_t stride = 1; stride < count; stride *= 2) {
    const at::Tensor moved = at::matmul(jump, y.slice(2, 0, count - stride));
    y = at::cat({y.slice(2, 0, stride), y.slice(2, stride, count) + moved}, 2);
    if (stride * 2 < count) jump = at::matmul(jump, jump);
  }
  return y;
}

at::Tensor blurry_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const BlaOptions& opt) {
  return blurry_window_attention_with_state(q, k, v, opt, nullptr);
}

at::Tensor blurry_window_attention_with_state(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const BlaOptions& opt, BlaState* state) {
  opt.validate();
  check_sequence_inputs("blurry_window_attention", q, k, v);
  if (state == nullptr) {
    if (!q.is_cuda()) return chunked_forward(q, k, v, opt, {}, {}, 0, nullptr);
    std::string why;
    switch (kernel_route(q, k, v, opt, &why)) {
      case KernelRoute::kSlidingWindow:
        return sliding_window_attention(q, k, v, WindowOptions{opt.window, resolve_scale(opt, q.size(3))});
#ifdef BLA_HAVE_CUDA_KERNELS
      case KernelRoute::kFused:
        return kernels::bla_attention(q, k, v, *kernel_tables(opt.window, opt.slots, q.device(), nullptr),
                                      resolve_scale(opt, q.size(3)));
#endif
      default:
        note_kernel_fallback("blurry_window_attention", why);
        return chunked_forward(q, k, v, opt, {}, {}, 0, nullptr);
    }
  }
  if (!state->keys.defined() && !state->values.defined()) {
    if (state->position != 0) throw_input_error("blurry_window_attention", "an empty state must have position 0");
    return chunked_forward(q, k, v, opt, {}, {}, 0, state);
  }
  check_state("blurry_window_attention", *state, q, v, opt);
  const BlaState incoming = *state;
  return chunked_forward(q, k, v, opt, incoming.keys, incoming.values, incoming.position, state);
}

at::Tensor blurry_window_attention_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const BlaOptions& opt) {
  opt.validate();
  check_sequence_inputs("blurry_window_attention_chunked", q, k, v);
  return chunked_forward(q, k, v, opt, {}, {}, 0, nullptr);
}

bool bla_kernel_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlaOptions& opt,
                          std::string* why) {
  opt.validate();
  check_sequence_inputs("bla_kernel_supported", q, k, v);
  return kernel_route(q, k, v, opt, why) != KernelRoute::kNone;
}

at::Tensor blurry_window_attention_reference(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                             const BlaOptions& opt) {
  opt.validate();
  check_sequence_inputs("blurry_window_attention_reference", q_in, k_in, v_in);
  const at::ScalarType type = compute_type(q_in.scalar_type());
  const at::Tensor q = q_in.to(type), k = k_in.to(type), v = v_in.to(type);
  const int64_t batch = q.size(0), length = q.size(1), heads = q.size(2);
  const int64_t dk = q.size(3), dv = v.size(3), n = opt.slots;
  // Straight from float64 operators, not the cache: the reference shares as
  // little as possible with the forms it checks.
  const BlaOperators f64 = make_bla_operators(opt.window, n, 1);
  const auto to = [&](const at::Tensor& t) { return t.to(q.device(), q.scalar_type()); };
  const at::Tensor shift = to(f64.shift), read = to(f64.forget_read), write = to(f64.forget_write);
  const double r = static_cast<double>(opt.window) / static_cast<double>(n);
  const double scale = resolve_scale(opt, dk);

  // One step of the slot memory, as its three steps (docs/bla.md).
  const auto step = [&](const at::Tensor& slots, const at::Tensor& x) {  // (B, H, N, D), (B, H, D)
    const at::Tensor leaving = at::einsum("l,bhld->bhd", {read, slots});                  // value at age W-1
    const at::Tensor forgotten = slots - write.view({1, 1, n, 1}) * leaving.unsqueeze(2);  // (I - p g^T) S
    const at::Tensor shifted = at::einsum("jl,bhld->bhjd", {shift, forgotten});           // Shift S
    const at::Tensor inserted = at::cat({shifted.slice(2, 0, 1) + x.unsqueeze(2) / r, shifted.slice(2, 1, n)}, 2);
    return inserted;
  };

  at::Tensor slot_keys = at::zeros({batch, heads, n, dk}, q.options());
  at::Tensor slot_values = at::zeros({batch, heads, n, dv}, v.options());
  const at::Tensor mask = age_mask(0, length, opt, q.device());  // (T, N)
  std::vector<at::Tensor> outputs;
  outputs.reserve(static_cast<size_t>(length));
  for (int64_t t = 0; t < length; ++t) {
    slot_keys = step(slot_keys, k.select(1, t));
    slot_values = step(slot_values, v.select(1, t));
    at::Tensor scores = at::einsum("bhnd,bhd->bhn", {slot_keys, q.select(1, t)}) * scale;
    scores = scores.masked_fill(mask[t], -std::numeric_limits<double>::infinity());
    const at::Tensor weights = at::softmax(scores, -1);
    outputs.push_back(at::einsum("bhn,bhnd->bhd", {weights, slot_values}));
  }
  if (outputs.empty()) return at::empty({batch, 0, heads, dv}, v_in.options());
  return at::stack(outputs, 1).to(v_in.scalar_type());
}

BlaState bla_initial_state(int64_t batch, int64_t heads, int64_t dk, int64_t dv, const BlaOptions& opt,
                           const at::TensorOptions& options) {
  opt.validate();
  return BlaState{at::zeros({batch, heads, opt.slots, dk}, options), at::zeros({batch, heads, opt.slots, dv}, options),
                  0};
}

at::Tensor bla_decode_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, BlaState& state,
                           const BlaOptions& opt) {
  opt.validate();
  const std::string where = "bla_decode_step";
  if (!q.defined() || !k.defined() || !v.defined() || q.dim() != 3 || k.dim() != 3 || v.dim() != 3 ||
      q.sizes() != k.sizes() || q.size(0) != v.size(0) || q.size(1) != v.size(1)) {
    std::ostringstream os;
    os << "q, k, v must be (batch, heads, head_dim) with q and k alike; got q "
       << (q.defined() ? q.sizes() : at::IntArrayRef{}) << ", k " << (k.defined() ? k.sizes() : at::IntArrayRef{})
       << ", v " << (v.defined() ? v.sizes() : at::IntArrayRef{});
    throw_input_error(where, os.str());
  }
  check_state(where, state, q, v, opt);
  // Computed like the chunked form (float32 for half/bf16); the state keeps
  // the dtype it was made with.
  const at::ScalarType type = compute_type(q.scalar_type());
  // The chunk size does not matter here; reuse the training form's cache entry.
  const BlaOperators ops = bla_operators(opt.window, opt.slots, opt.chunk, type, q.device());
  const at::Tensor insert = ops.b.view({opt.slots, 1});

  // S_t = A S_{t-1} + b x_t^T: one application of A, the state keeps its size.
  const at::Tensor keys = at::matmul(ops.A, state.keys.to(type)) + insert * k.to(type).unsqueeze(2);
  const at::Tensor values = at::matmul(ops.A, state.values.to(type)) + insert * v.to(type).unsqueeze(2);

  const double scale = resolve_scale(opt, q.size(-1));
  at::Tensor scores = at::matmul(keys, q.to(type).unsqueeze(-1)).squeeze(-1) * scale;  // (B, H, N)
  if (mask_needed(state.position, opt))
    scores = scores.masked_fill(age_mask(state.position, 1, opt, q.device()).squeeze(0),
                                -std::numeric_limits<double>::infinity());
  const at::Tensor weights = at::softmax(scores, -1);
  state.keys = keys.to(state.keys.scalar_type());
  state.values = values.to(state.values.scalar_type());
  state.position += 1;
  return at::matmul(weights.unsqueeze(-2), values).squeeze(-2).to(v.scalar_type());  // (B, H, Dv)
}

}  // namespace bla::ops
