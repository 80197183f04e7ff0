// LibTorch side of the BLA kernels: tables, argument checks, buffers, stream,
// and two autograd Functions: the whole chunked form (carry and chunk step,
// BlaFunction) and the chunk step alone on given modal slots.
#include "bla_kernels/bla.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd_common.h"
#include "bla_chunk_launch.h"

namespace bla::kernels {
namespace {

constexpr const char* kWho = "bla: bla kernel: ";
using detail::check_buffer;
using detail::check_cuda;
using detail::shape_text;
using detail::sizes_text;
using detail::unsupported;

// The compiled slot counts (kernels/bla_chunk_device.cuh, for_compiled_shape)
// that hold N slots; the kernels run on N zero-padded to it.
int64_t padded_slots(int64_t slots) { return slots <= 32 ? 32 : slots <= 64 ? 64 : 128; }

void require_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t slots) {
  std::string why;
  if (!bla_chunk_supported(q, k, v, slots, &why)) throw std::invalid_argument(kWho + why);
}

int64_t chunk_count(const at::Tensor& q) { return (q.size(1) + kBlaKernelChunk - 1) / kBlaKernelChunk; }

// q, k or v as the kernels read it: as it lies where its rows of H heads
// are each D contiguous elements, its tokens a fixed stride apart and its
// batches T tokens apart (a view of the stacked projection's output, whose
// tokens lie 3 H D apart, among them), else a contiguous copy.
at::Tensor token_rows(const at::Tensor& x) {
  const bool rows = x.stride(3) == 1 && x.stride(2) == x.size(3) && x.size(1) > 1 &&
                    x.stride(1) >= x.size(2) * x.size(3) &&
                    (x.size(0) == 1 || x.stride(0) == x.size(1) * x.stride(1));
  return rows ? x : x.contiguous();
}

// Modal slots (B, H, nc, N, D) as contiguous float32 padded to NP slots.
at::Tensor padded_modal(const at::Tensor& modal, const at::Tensor& q, const BlaChunkTables& tables,
                        const char* name) {
  const std::vector<int64_t> want{q.size(0), q.size(2), chunk_count(q), tables.slots, q.size(3)};
  if (!modal.defined() || modal.sizes().vec() != want || modal.device() != q.device())
    throw std::invalid_argument(std::string(kWho) + name + " must be (B, H, nc, N, D) = " + sizes_text(want) +
                                " on " + q.device().str() + ", got " +
                                (modal.defined() ? shape_text(modal) : std::string("undefined")));
  at::Tensor x = modal.to(at::kFloat);
  if (tables.padded != tables.slots) x = at::constant_pad_nd(x, {0, 0, 0, tables.padded - tables.slots});
  x = x.contiguous();
  return detail::aligned_32(x) ? x : x.clone();
}

void check_tables(const BlaChunkTables& t, const at::Tensor& q) {
  if (!t.h.defined() || !t.h_tf32.defined() || t.h.device() != q.device() || t.padded != padded_slots(t.slots))
    throw std::invalid_argument(std::string(kWho) + "tables must come from make_bla_chunk_tables on " +
                                q.device().str());
}

detail::BlaChunkShape make_shape(const at::Tensor& q, const BlaChunkTables& t, double scale) {
  detail::BlaChunkShape s;
  s.batch = static_cast<int>(q.size(0));
  s.seq = static_cast<int>(q.size(1));
  s.heads = static_cast<int>(q.size(2));
  s.dim = static_cast<int>(q.size(3));
  s.slots = static_cast<int>(t.slots);
  s.padded = static_cast<int>(t.padded);
  s.window = static_cast<int>(t.window);
  s.chunks = static_cast<int>(chunk_count(q));
  s.scale = static_cast<float>(scale > 0.0 ? scale : 1.0 / std::sqrt(static_cast<double>(s.dim)));
  return s;
}

// The tables the kernels read: bf16 inputs' tensor-core products take the
// product tables rounded to tf32 (block_product.cuh, kTable), float32
// inputs' products the full ones.
detail::BlaChunkTablesView table_view(const BlaChunkTables& t, detail::BlaDtype dtype) {
  const bool tf32 = dtype == detail::BlaDtype::kBFloat16;
  detail::BlaChunkTablesView v;
  v.inject = (tf32 ? t.inject_tf32 : t.inject).data_ptr<float>();
  v.h = (tf32 ? t.h_tf32 : t.h).data_ptr<float>();
  v.h_t = (tf32 ? t.h_t_tf32 : t.h_t).data_ptr<float>();
  v.basis = (tf32 ? t.basis_tf32 : t.basis).data_ptr<float>();
  v.basis_t = (tf32 ? t.basis_t_tf32 : t.basis_t).data_ptr<float>();
  v.alpha = t.alpha.data_ptr<float>();
  v.beta = t.beta.data_ptr<float>();
  v.beta_t = t.beta_t.data_ptr<float>();
  v.partner = t.partner.data_ptr<int>();
  return v;
}

detail::BlaDtype dtype_of(const at::Tensor& q) {
  return q.scalar_type() == at::kBFloat16 ? detail::BlaDtype::kBFloat16 : detail::BlaDtype::kFloat32;
}

// The launches, on checked inputs (q, k, v read through their token stride,
// token_rows); modal slots padded to NP.
detail::BlaChunkArgs chunk_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mk,
                                const at::Tensor& mv, const BlaChunkTables& t, double scale) {
  detail::BlaChunkArgs a;
  a.shape = make_shape(q, t, scale);
  a.dtype = dtype_of(q);
  a.tables = table_view(t, a.dtype);
  a.q = q.data_ptr();
  a.k = k.data_ptr();
  a.v = v.data_ptr();
  a.q_row = q.stride(1);
  a.k_row = k.stride(1);
  a.v_row = v.stride(1);
  a.modal_keys = mk.data_ptr<float>();
  a.modal_values = mv.data_ptr<float>();
  return a;
}

// The slot probabilities (B, H, nc, 64, NP) the forward saves for the
// backward when autograd will need them, else undefined.
at::Tensor probabilities_for_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      const BlaChunkTables& t, bool needed) {
  if (!needed) return {};
  return at::empty({q.size(0), q.size(2), chunk_count(q), kBlaKernelChunk, t.padded}, q.options().dtype(at::kFloat));
}

float* optional_data(const at::Tensor& x) { return x.defined() ? x.data_ptr<float>() : nullptr; }

void run_chunk_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mk,
                       const at::Tensor& mv, const BlaChunkTables& t, double scale, at::Tensor& out,
                       const at::Tensor& probabilities = {}) {
  detail::BlaChunkArgs a = chunk_args(q, k, v, mk, mv, t, scale);
  a.out = out.data_ptr();
  a.probabilities = optional_data(probabilities);
  check_cuda(kWho, detail::bla_chunk_forward_launch(a, detail::kernel_stream(q)), "forward launch");
}

void run_chunk_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mk,
                        const at::Tensor& mv, const BlaChunkTables& t, double scale, const at::Tensor& grad_out,
                        at::Tensor& dq, at::Tensor& dk, at::Tensor& dv, at::Tensor& dmk, at::Tensor& dmv,
                        const at::Tensor& probabilities = {}) {
  detail::BlaChunkArgs a = chunk_args(q, k, v, mk, mv, t, scale);
  a.probabilities = optional_data(probabilities);
  a.grad_out = grad_out.data_ptr();
  a.grad_q = dq.data_ptr();
  a.grad_k = dk.data_ptr();
  a.grad_v = dv.data_ptr();
  a.grad_modal_keys = dmk.data_ptr<float>();
  a.grad_modal_values = dmv.data_ptr<float>();
  const at::Tensor grad_scores =
      at::empty({q.size(0), q.size(2), chunk_count(q), kBlaKernelChunk, t.padded}, q.options().dtype(at::kFloat));
  a.grad_scores = grad_scores.data_ptr<float>();
  check_cuda(kWho, detail::bla_chunk_backward_launch(a, detail::kernel_stream(q)), "backward launch");
}

// Keys and values (B, T, H, D) -> their modal slots before every chunk
// (B, H, nc, NP, D), in one launch.
std::pair<at::Tensor, at::Tensor> run_carry_forward(const at::Tensor& k, const at::Tensor& v,
                                                    const BlaChunkTables& t) {
  const auto modal = [&] {
    return at::empty({k.size(0), k.size(2), chunk_count(k), t.padded, k.size(3)}, k.options().dtype(at::kFloat));
  };
  std::pair<at::Tensor, at::Tensor> out{modal(), modal()};
  detail::BlaCarryArgs a;
  a.shape = make_shape(k, t, 0.0);
  a.dtype = dtype_of(k);
  a.tables = table_view(t, a.dtype);
  a.tensors[0].x = k.data_ptr();
  a.tensors[0].x_row = k.stride(1);
  a.tensors[0].modal = out.first.data_ptr<float>();
  a.tensors[1].x = v.data_ptr();
  a.tensors[1].x_row = v.stride(1);
  a.tensors[1].modal = out.second.data_ptr<float>();
  check_cuda(kWho, detail::bla_carry_forward_launch(a, detail::kernel_stream(k)), "carry forward launch");
  return out;
}

// The grads of k and v: the chunk step's own (dk, dv) plus the carry's part
// from the grads of their modal slots, in one launch.
std::pair<at::Tensor, at::Tensor> run_carry_backward(const at::Tensor& grad_modal_keys,
                                                     const at::Tensor& grad_modal_values, const at::Tensor& dk,
                                                     const at::Tensor& dv, const BlaChunkTables& t) {
  std::pair<at::Tensor, at::Tensor> out{at::empty_like(dk), at::empty_like(dv)};
  detail::BlaCarryArgs a;
  a.shape = make_shape(dk, t, 0.0);
  a.dtype = dtype_of(dk);
  a.tables = table_view(t, a.dtype);
  a.tensors[0].grad_modal = grad_modal_keys.data_ptr<float>();
  a.tensors[0].grad_add = dk.data_ptr();
  a.tensors[0].grad_x = out.first.data_ptr();
  a.tensors[1].grad_modal = grad_modal_values.data_ptr<float>();
  a.tensors[1].grad_add = dv.data_ptr();
  a.tensors[1].grad_x = out.second.data_ptr();
  check_cuda(kWho, detail::bla_carry_backward_launch(a, detail::kernel_stream(dk)), "carry backward launch");
  return out;
}

// Every tensor of BlaChunkTables, in the order save_tables stores them.
constexpr at::Tensor BlaChunkTables::*kTableTensors[] = {
    &BlaChunkTables::inject,      &BlaChunkTables::h,           &BlaChunkTables::h_t,        &BlaChunkTables::basis,
    &BlaChunkTables::basis_t,     &BlaChunkTables::alpha,       &BlaChunkTables::beta,       &BlaChunkTables::beta_t,
    &BlaChunkTables::partner,     &BlaChunkTables::inject_tf32, &BlaChunkTables::h_tf32,     &BlaChunkTables::h_t_tf32,
    &BlaChunkTables::basis_tf32,  &BlaChunkTables::basis_t_tf32};

// The tables ride into autograd Functions as a non-tensor argument and are
// saved tensor by tensor.
void save_tables(torch::autograd::AutogradContext* ctx, const BlaChunkTables& t, double scale) {
  ctx->saved_data["scale"] = scale;
  ctx->saved_data["window"] = t.window;
  ctx->saved_data["slots"] = t.slots;
  ctx->saved_data["padded"] = t.padded;
  std::vector<at::Tensor> tensors;
  for (const auto member : kTableTensors) tensors.push_back(t.*member);
  ctx->saved_data["tables"] = tensors;
}

BlaChunkTables load_tables(torch::autograd::AutogradContext* ctx) {
  BlaChunkTables t;
  t.window = ctx->saved_data["window"].toInt();
  t.slots = ctx->saved_data["slots"].toInt();
  t.padded = ctx->saved_data["padded"].toInt();
  const auto list = ctx->saved_data["tables"].toTensorVector();
  size_t i = 0;
  for (const auto member : kTableTensors) t.*member = list.at(i++);
  return t;
}

// The chunk step on given modal slots: inputs q, k, v, modal keys, modal values.
struct BlaChunkFunction : public torch::autograd::Function<BlaChunkFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const at::Tensor& modal_keys, const at::Tensor& modal_values,
                            const BlaChunkTables& tables, double scale) {
    const detail::KernelDeviceGuard guard(q.device());
    const at::Tensor qc = token_rows(q), kc = token_rows(k), vc = token_rows(v);
    const at::Tensor mk = padded_modal(modal_keys, q, tables, "modal_keys");
    const at::Tensor mv = padded_modal(modal_values, q, tables, "modal_values");
    const at::Tensor probabilities = probabilities_for_backward(
        qc, kc, vc, tables,
        q.requires_grad() || k.requires_grad() || modal_keys.requires_grad() || v.requires_grad() ||
            modal_values.requires_grad());
    at::Tensor out = at::empty(q.sizes(), q.options());
    run_chunk_forward(qc, kc, vc, mk, mv, tables, scale, out, probabilities);
    ctx->save_for_backward({qc, kc, vc, modal_keys, modal_values, probabilities});
    save_tables(ctx, tables, scale);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &modal_keys = saved[3], &modal_values = saved[4];
    const detail::KernelDeviceGuard guard(q.device());
    const BlaChunkTables t = load_tables(ctx);
    const double scale = ctx->saved_data["scale"].toDouble();
    const at::Tensor grad_out =
        grad_outputs[0].defined() ? grad_outputs[0].to(q.scalar_type()).contiguous()
                                  : at::zeros(q.sizes(), q.options());
    const at::Tensor mk = padded_modal(modal_keys, q, t, "modal_keys");
    const at::Tensor mv = padded_modal(modal_values, q, t, "modal_values");
    at::Tensor dq = at::empty(q.sizes(), q.options()), dk = at::empty(k.sizes(), k.options()),
               dv = at::empty(v.sizes(), v.options());
    at::Tensor dmk = at::empty_like(mk), dmv = at::empty_like(mv);
    run_chunk_backward(q, k, v, mk, mv, t, scale, grad_out, dq, dk, dv, dmk, dmv, saved[5]);
    const auto unpad = [&](const at::Tensor& grad, const at::Tensor& like) {
      return grad.slice(3, 0, t.slots).to(like.scalar_type()).contiguous();
    };
    return {dq, dk, dv, unpad(dmk, modal_keys), unpad(dmv, modal_values), at::Tensor(), at::Tensor()};
  }
};

// The whole chunked form: carry and chunk step, forward and backward.
struct BlaFunction : public torch::autograd::Function<BlaFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const BlaChunkTables& tables, double scale) {
    const detail::KernelDeviceGuard guard(q.device());
    const at::Tensor qc = token_rows(q), kc = token_rows(k), vc = token_rows(v);
    const auto [mk, mv] = run_carry_forward(kc, vc, tables);
    const at::Tensor probabilities =
        probabilities_for_backward(qc, kc, vc, tables, q.requires_grad() || k.requires_grad() || v.requires_grad());
    at::Tensor out = at::empty(q.sizes(), q.options());
    run_chunk_forward(qc, kc, vc, mk, mv, tables, scale, out, probabilities);
    ctx->save_for_backward({qc, kc, vc, mk, mv, probabilities});
    save_tables(ctx, tables, scale);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &mk = saved[3], &mv = saved[4];
    const detail::KernelDeviceGuard guard(q.device());
    const BlaChunkTables t = load_tables(ctx);
    const double scale = ctx->saved_data["scale"].toDouble();
    const at::Tensor grad_out =
        grad_outputs[0].defined() ? grad_outputs[0].to(q.scalar_type()).contiguous()
                                  : at::zeros(q.sizes(), q.options());
    at::Tensor dq = at::empty(q.sizes(), q.options()), dk = at::empty(k.sizes(), k.options()),
               dv = at::empty(v.sizes(), v.options());
    at::Tensor dmk = at::empty_like(mk), dmv = at::empty_like(mv);
    run_chunk_backward(q, k, v, mk, mv, t, scale, grad_out, dq, dk, dv, dmk, dmv, saved[5]);
    const auto [grad_k, grad_v] = run_carry_backward(dmk, dmv, dk, dv, t);
    return {dq, grad_k, grad_v, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

BlaChunkTables make_bla_chunk_tables(int64_t window, int64_t slots, const at::Tensor& h, const at::Tensor& basis,
                                     const at::Tensor& basis_inverse, const at::Tensor& alpha,
                                     const at::Tensor& beta, const at::Tensor& beta_t, const at::Tensor& partner,
                                     c10::Device device) {
  const at::NoGradGuard no_grad;
  if (slots < 1 || slots > 128)
    throw std::invalid_argument(std::string(kWho) + "slots must be in [1, 128], got " + std::to_string(slots));
  const std::vector<int64_t> by_row{kBlaKernelChunk, slots}, square{slots, slots};
  if (h.sizes().vec() != by_row || alpha.sizes().vec() != by_row || beta.sizes().vec() != by_row ||
      beta_t.sizes().vec() != by_row || basis.sizes().vec() != square || basis_inverse.sizes().vec() != square ||
      partner.sizes().vec() != std::vector{slots})
    throw std::invalid_argument(std::string(kWho) + "tables must be h, alpha, beta, beta_t (64, N), basis and "
                                "basis_inverse (N, N) and partner (N) for N = " + std::to_string(slots));
  BlaChunkTables t;
  t.window = window;
  t.slots = slots;
  t.padded = padded_slots(slots);
  const int64_t extra = t.padded - slots;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  const auto pad_columns = [&](const at::Tensor& x) {
    return at::constant_pad_nd(x.to(at::kDouble), {0, extra}).to(f32).contiguous();
  };
  // inject[:, s] = R^-1 h(63 - s): token s of a chunk in the modal slots after it.
  const at::Tensor inject = at::matmul(basis_inverse.to(at::kDouble), h.to(at::kDouble).flip(0).t());
  t.inject = at::constant_pad_nd(inject, {0, 0, 0, extra}).to(f32).contiguous();
  t.h = pad_columns(h);
  t.h_t = t.h.t().contiguous();
  t.basis = at::constant_pad_nd(basis.to(at::kDouble), {0, extra, 0, extra}).to(f32).contiguous();
  t.basis_t = t.basis.t().contiguous();
  t.alpha = pad_columns(alpha);
  t.beta = pad_columns(beta);
  t.beta_t = pad_columns(beta_t);
  // Padded slots are their own partners (with zero weights).
  t.partner = at::cat({partner.to(at::kLong), at::arange(slots, t.padded, at::TensorOptions().dtype(at::kLong))})
                  .to(f32.dtype(at::kInt))
                  .contiguous();
  t.inject_tf32 = tf32_rounded(t.inject);
  t.h_tf32 = tf32_rounded(t.h);
  t.h_t_tf32 = tf32_rounded(t.h_t);
  t.basis_tf32 = tf32_rounded(t.basis);
  t.basis_t_tf32 = tf32_rounded(t.basis_t);
  return t;
}

at::Tensor tf32_rounded(const at::Tensor& x) {
  if (x.scalar_type() != at::kFloat)
    throw std::invalid_argument(std::string(kWho) + "tf32_rounded takes float32, got " +
                                std::string(c10::toString(x.scalar_type())));
  // On the bits: adding half of the dropped part's unit (0x1000) to the
  // magnitude carries into the kept bits from half up, ties away from zero
  // (the sign bit is apart); a carry out of the mantissa steps the exponent,
  // as rounding up to the next binade should.
  const at::Tensor xc = x.contiguous();
  const at::Tensor bits = xc.view(at::kInt);
  const at::Tensor rounded = at::bitwise_and(bits + 0x1000, static_cast<int64_t>(static_cast<int32_t>(0xffffe000u)));
  return at::where(at::isfinite(xc), rounded.view(at::kFloat), xc);
}

bool bla_chunk_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t slots,
                         std::string* why) {
  if (const std::string problem = detail::qkv_problem(q, k, v); !problem.empty()) return unsupported(why, problem);
  const int64_t d = q.size(3);
  if (slots < 1 || slots > 128)
    return unsupported(why, "slots " + std::to_string(slots) + " is not supported; use 1 to 128");
  if (!detail::bla_chunk_shape_supported(static_cast<int>(d), static_cast<int>(padded_slots(slots))))
    return unsupported(
        why, "head dim " + std::to_string(d) + " with " + std::to_string(slots) +
                 " slots is not compiled into the kernels (kernels/bla_chunk_device.cuh, for_compiled_shape)");
  return true;
}

void bla_chunk_forward_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& modal_keys, const at::Tensor& modal_values, const BlaChunkTables& tables,
                           double scale, at::Tensor& out) {
  require_supported(q, k, v, tables.slots);
  check_tables(tables, q);
  const at::Tensor qc = token_rows(q), kc = token_rows(k), vc = token_rows(v);
  const at::Tensor mk = padded_modal(modal_keys, q, tables, "modal_keys");
  const at::Tensor mv = padded_modal(modal_values, q, tables, "modal_values");
  check_buffer(kWho, out, "out", q.sizes(), q.scalar_type(), q);

  const detail::KernelDeviceGuard guard(q.device());
  run_chunk_forward(qc, kc, vc, mk, mv, tables, scale, out);
}

void bla_chunk_backward_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& modal_keys, const at::Tensor& modal_values,
                            const BlaChunkTables& tables, double scale, const at::Tensor& grad_out,
                            at::Tensor& grad_q, at::Tensor& grad_k, at::Tensor& grad_v, at::Tensor& grad_modal_keys,
                            at::Tensor& grad_modal_values) {
  require_supported(q, k, v, tables.slots);
  check_tables(tables, q);
  const at::Tensor qc = token_rows(q), kc = token_rows(k), vc = token_rows(v);
  const at::Tensor gc = grad_out.to(q.scalar_type()).contiguous();
  if (gc.sizes() != q.sizes())
    throw std::invalid_argument(std::string(kWho) + "grad_out must be shaped like q " + shape_text(q));
  const at::Tensor mk = padded_modal(modal_keys, q, tables, "modal_keys");
  const at::Tensor mv = padded_modal(modal_values, q, tables, "modal_values");
  check_buffer(kWho, grad_q, "grad_q", q.sizes(), q.scalar_type(), q);
  check_buffer(kWho, grad_k, "grad_k", q.sizes(), q.scalar_type(), q);
  check_buffer(kWho, grad_v, "grad_v", q.sizes(), q.scalar_type(), q);
  const std::vector<int64_t> modal_shape{q.size(0), q.size(2), chunk_count(q), tables.slots, q.size(3)};
  check_buffer(kWho, grad_modal_keys, "grad_modal_keys", modal_shape, at::kFloat, q);
  check_buffer(kWho, grad_modal_values, "grad_modal_values", modal_shape, at::kFloat, q);

  const detail::KernelDeviceGuard guard(q.device());
  const bool padded = tables.padded != tables.slots;
  std::vector<int64_t> padded_shape = modal_shape;
  padded_shape[3] = tables.padded;
  at::Tensor gmk = padded ? at::empty(padded_shape, mk.options()) : grad_modal_keys;
  at::Tensor gmv = padded ? at::empty(padded_shape, mv.options()) : grad_modal_values;
  run_chunk_backward(qc, kc, vc, mk, mv, tables, scale, gc, grad_q, grad_k, grad_v, gmk, gmv);
  if (padded) {
    grad_modal_keys.copy_(gmk.slice(3, 0, tables.slots));
    grad_modal_values.copy_(gmv.slice(3, 0, tables.slots));
  }
}

at::Tensor bla_chunk_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& modal_keys, const at::Tensor& modal_values,
                               const BlaChunkTables& tables, double scale) {
  require_supported(q, k, v, tables.slots);
  check_tables(tables, q);
  return BlaChunkFunction::apply(q, k, v, modal_keys, modal_values, tables, scale);
}

at::Tensor bla_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlaChunkTables& tables,
                         double scale) {
  require_supported(q, k, v, tables.slots);
  check_tables(tables, q);
  return BlaFunction::apply(q, k, v, tables, scale);
}

}  // namespace bla::kernels
