// bla_kernels/gla.h on tensors: the checks, the workspace and the launch of
// the gated recurrence's kernels (gla_kernels.cu).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "autograd_common.h"
#include "bla_kernels/gla.h"
#include "gla_launch.h"

namespace bla::kernels {

namespace {

const std::string kWho = "bla: gla kernel: ";

detail::GlaShape shape_of(const at::Tensor& q, const at::Tensor& v, bool value_axis) {
  detail::GlaShape s;
  s.batch = static_cast<int>(q.size(0));
  s.heads = static_cast<int>(q.size(1));
  s.seq = static_cast<int>(q.size(2));
  s.dk = static_cast<int>(q.size(3));
  s.dv = static_cast<int>(v.size(3));
  s.value_axis = value_axis;
  return s;
}

// The tensor itself where its last axis has stride 1 (the kernels read any
// other strides), else a contiguous copy; and its batch, head, token strides.
at::Tensor rows_of(const at::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); }
detail::GlaStrides strides_of(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

// The compute dtype (and the output's): float64 for float64 inputs, else float32.
detail::GlaDtype dtype_of(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? detail::GlaDtype::kFloat64 : detail::GlaDtype::kFloat32;
}

detail::GlaElement element_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kDouble: return detail::GlaElement::kFloat64;
    case at::kBFloat16: return detail::GlaElement::kBFloat16;
    case at::kHalf: return detail::GlaElement::kHalf;
    default: return detail::GlaElement::kFloat32;
  }
}

bool single_precision_or_less(at::ScalarType t) { return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf; }

detail::GlaInput input_of(const at::Tensor& t) { return {t.data_ptr(), strides_of(t), element_of(t)}; }

// An empty (B, H, T, width) tensor in like's memory order: token-major where
// like is a (B, T, H, D) tensor's transposed view (so that the layers'
// transpose back is free), heads-first otherwise.
at::Tensor empty_ordered_as(const at::Tensor& like, int64_t width, const at::TensorOptions& options) {
  const int64_t B = like.size(0), H = like.size(1), T = like.size(2);
  return like.stride(2) > like.stride(1) ? at::empty({B, T, H, width}, options).transpose(1, 2)
                                         : at::empty({B, H, T, width}, options);
}

}  // namespace

bool gated_recurrence_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                bool value_axis, std::string* why) {
  using detail::unsupported;
  for (const at::Tensor* t : {&q, &k, &v, &g}) {
    if (!t->defined() || !t->is_cuda()) return unsupported(why, "q, k, v and g must be CUDA tensors");
    if (t->dim() != 4) return unsupported(why, "q, k, v and g must be 4-D (batch, heads, seq, dim)");
    if (t->device() != q.device()) return unsupported(why, "q, k, v and g must be on one device");
    const auto dtype = t->scalar_type();
    if (dtype != at::kDouble && !single_precision_or_less(dtype))
      return unsupported(why, std::string("dtype ") + c10::toString(dtype) +
                                  " (float32, bfloat16, half or float64 only)");
    if ((dtype == at::kDouble) != (q.scalar_type() == at::kDouble))
      return unsupported(why, "q, k, v and g must be all float64 or none");
  }
  const int64_t dk = q.size(3), dv = v.size(3), dg = value_axis ? dv : dk;
  const std::vector<int64_t> gate_sizes = {q.size(0), q.size(1), q.size(2), dg};
  if (k.sizes() != q.sizes() || v.size(0) != q.size(0) || v.size(1) != q.size(1) || v.size(2) != q.size(2) ||
      g.sizes() != at::IntArrayRef(gate_sizes))
    return unsupported(why, "shapes q " + detail::shape_text(q) + ", k " + detail::shape_text(k) + ", v " +
                                detail::shape_text(v) + ", g " + detail::shape_text(g) + " do not match");
  if (q.size(2) < 1) return unsupported(why, "an empty sequence");
  if (dk < 1 || dv < 1 || dk > 128 || dv > 128)
    return unsupported(why, "head dims Dk " + std::to_string(dk) + ", Dv " + std::to_string(dv) + " (1 to 128)");
  // PyTorch's cached device properties: no CUDA call, so the check can run inside a graph capture.
  const size_t limit = at::cuda::getDeviceProperties(q.device().index())->sharedMemPerBlockOptin;
  const size_t need = detail::gla_smem_bytes(shape_of(q, v, value_axis), dtype_of(q));
  if (need > limit)
    return unsupported(
        why, "a chunk needs " + std::to_string(need) + " bytes of shared memory, a block has " + std::to_string(limit));
  return true;
}

int64_t gated_recurrence_chunks(int64_t seq) { return detail::gla_chunks(static_cast<int>(seq)); }

at::Tensor gated_recurrence_forward(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                    const at::Tensor& g_in, const GatedRecurrenceKernelOptions& options,
                                    at::Tensor* final_state, at::Tensor* entering_states) {
  const bool value_axis = options.value_axis;
  std::string why;
  if (!gated_recurrence_supported(q_in, k_in, v_in, g_in, value_axis, &why))
    throw std::invalid_argument(kWho + "unsupported inputs: " + why);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const auto q = rows_of(q_in), k = rows_of(k_in), v = rows_of(v_in), g = rows_of(g_in);
  detail::GlaForwardArgs a;
  a.shape = shape_of(q, v, value_axis);
  a.shape.reversed = options.reversed;
  a.dtype = dtype_of(q);
  a.tensor_cores = options.tensor_cores;
  a.scale = options.scale;
  const int64_t B = a.shape.batch, H = a.shape.heads, Dk = a.shape.dk, Dv = a.shape.dv;
  const int64_t chunks = detail::gla_chunks(a.shape.seq), Dg = value_axis ? Dv : Dk;
  const auto compute_type = a.dtype == detail::GlaDtype::kFloat64 ? at::kDouble : at::kFloat;
  const auto compute = q.options().dtype(compute_type);
  auto out = empty_ordered_as(q, Dv, compute);
  a.q = input_of(q);
  a.k = input_of(k);
  a.v = input_of(v);
  a.g = input_of(g);
  a.out = out.data_ptr();
  a.out_strides = strides_of(out);
  const at::Tensor& given = options.entering_states;
  if (given.defined()) {
    const std::vector<int64_t> sizes = {B, H, chunks, Dk, Dv};
    if (given.sizes() != at::IntArrayRef(sizes) || given.scalar_type() != compute_type ||
        given.device() != q.device())
      throw std::invalid_argument(kWho + "entering states " + detail::shape_text(given) + " " +
                                  c10::toString(given.scalar_type()) + " on " + given.device().str() + ", expected " +
                                  detail::sizes_text(sizes) + " " + c10::toString(compute_type) + " on " +
                                  q.device().str());
    if (final_state != nullptr)
      throw std::invalid_argument(kWho + "a pass from given entering states has no final state");
    a.entering = given.data_ptr();
    a.entering_strides = {given.stride(0), given.stride(1), given.stride(2), given.stride(3), given.stride(4)};
    detail::check_cuda(kWho, detail::gla_forward_launch(a, at::cuda::getCurrentCUDAStream()), "gla_forward_launch");
    return out;
  }
  auto states = at::empty({B, H, chunks, Dk, Dv}, compute);
  auto totals = at::empty({B, H, chunks, Dg}, compute);
  at::Tensor last;
  if (final_state != nullptr) last = at::empty({B, H, Dk, Dv}, compute);
  a.states = states.data_ptr();
  a.totals = totals.data_ptr();
  a.final_state = last.defined() ? last.data_ptr() : nullptr;
  detail::check_cuda(kWho, detail::gla_forward_launch(a, at::cuda::getCurrentCUDAStream()), "gla_forward_launch");
  if (final_state != nullptr) *final_state = last;
  if (entering_states != nullptr) *entering_states = states;
  return out;
}

at::Tensor gated_recurrence_gate_gradient(const at::Tensor& a_in, const at::Tensor& da_in, const at::Tensor& c_in,
                                          const at::Tensor& dc_in, const at::Tensor& g) {
  const bool f64 = a_in.scalar_type() == at::kDouble;
  for (const at::Tensor* t : {&a_in, &da_in, &c_in, &dc_in}) {
    if (!t->is_cuda() || t->device() != g.device() || t->sizes() != g.sizes() || t->dim() != 4)
      throw std::invalid_argument(kWho + "gate gradient: a, da, c, dc must be CUDA tensors shaped as g " +
                                  detail::shape_text(g) + ", got " + detail::shape_text(*t));
    const auto dtype = t->scalar_type();
    if ((dtype == at::kDouble) != f64 || (!f64 && !single_precision_or_less(dtype)))
      throw std::invalid_argument(kWho + "gate gradient: dtype " + c10::toString(dtype) +
                                  " (float32, bfloat16 and half, or all float64)");
  }
  const c10::cuda::CUDAGuard guard(g.device());
  const auto a = rows_of(a_in), da = rows_of(da_in), c = rows_of(c_in), dc = rows_of(dc_in);
  const int64_t B = g.size(0), H = g.size(1), T = g.size(2), W = g.size(3);
  auto dg = empty_ordered_as(g, W, g.options());
  detail::GlaGateGradientArgs args;
  args.batch = static_cast<int>(B);
  args.heads = static_cast<int>(H);
  args.seq = static_cast<int>(T);
  args.width = static_cast<int>(W);
  args.dtype = f64 ? detail::GlaDtype::kFloat64 : detail::GlaDtype::kFloat32;
  args.a = input_of(a);
  args.da = input_of(da);
  args.c = input_of(c);
  args.dc = input_of(dc);
  args.dg = dg.data_ptr();
  args.dg_strides = strides_of(dg);
  args.dg_element = element_of(dg);
  const auto totals = at::empty(
      {static_cast<int64_t>(detail::gla_gate_workspace_elements(args.batch, args.heads, args.seq, args.width))},
      g.options().dtype(at::kDouble));
  args.totals = totals.data_ptr();
  if (T > 0 && W > 0)
    detail::check_cuda(kWho, detail::gla_gate_gradient_launch(args, at::cuda::getCurrentCUDAStream()),
                       "gla_gate_gradient_launch");
  return dg;
}

}  // namespace bla::kernels
