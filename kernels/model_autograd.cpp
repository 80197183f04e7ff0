// LibTorch side of the model kernels (RMSNorm, an ensemble's RMSNorm, SwiGLU
// activation, rotary embedding, short convolution, the batched head's
// cross-entropy): argument checks, buffers, stream, and their autograd
// Functions.
#include "bla_kernels/model.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include "autograd_common.h"
#include "model_launch.h"

namespace bla::kernels {
namespace {

using detail::check_cuda;
using detail::ModelDtype;
using detail::shape_text;
using detail::sizes_text;
using detail::unsupported;

ModelDtype model_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? ModelDtype::kBFloat16 : ModelDtype::kFloat32;
}

bool kernel_dtype(at::ScalarType dtype) { return dtype == at::kBFloat16 || dtype == at::kFloat; }

std::string dtype_problem(const char* name, const at::Tensor& t) {
  return std::string(name) + " has dtype " + c10::toString(t.scalar_type()) + "; the kernel takes bfloat16 or float32";
}

int sm_count() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }

// A caller-provided output buffer: contiguous, of this shape and dtype, on
// like's device (the kernels use 16-byte words where it is aligned, single
// elements where not).
void check_output(const std::string& who, const at::Tensor& t, const char* name, at::IntArrayRef sizes,
                  at::ScalarType dtype, const at::Tensor& like) {
  if (!t.defined() || t.sizes() != sizes || t.scalar_type() != dtype || !t.is_contiguous() ||
      t.device() != like.device())
    throw std::invalid_argument(who + name + " must be a contiguous " + c10::toString(dtype) + " tensor of shape " +
                                sizes_text(sizes) + " on " + like.device().str() + ", got " +
                                (t.defined() ? shape_text(t) + " " + c10::toString(t.scalar_type()) : "undefined"));
}

// ----------------------------------------------------------------- RMSNorm

constexpr const char* kNormWho = "bla: rms_norm kernel: ";

// The output dtype a call asks for: x's, or bf16 for a float32 x.
at::ScalarType norm_output_dtype(const at::Tensor& x, std::optional<at::ScalarType> out_dtype) {
  const at::ScalarType dtype = out_dtype.value_or(x.scalar_type());
  if (dtype != x.scalar_type() && !(dtype == at::kBFloat16 && x.scalar_type() == at::kFloat))
    throw std::invalid_argument(std::string(kNormWho) + "the output dtype must be x's (" +
                                c10::toString(x.scalar_type()) + ") or bfloat16 for a float32 x, got " +
                                c10::toString(dtype));
  return dtype;
}

// The output's gradient as the backward kernel reads it: bf16 as it comes, any
// other dtype in x's; contiguous.
at::Tensor norm_grad_input(const at::Tensor& grad_y, const at::Tensor& x) {
  return (grad_y.scalar_type() == at::kBFloat16 ? grad_y : grad_y.to(x.scalar_type())).contiguous();
}

// One forward launch over `members` blocks of rows (x, y contiguous; w (D) or
// (members, D)); with res defined, of s = x + res, written to x_out.
void norm_forward(const at::Tensor& x, const at::Tensor& w, double eps, int64_t members, at::Tensor& y,
                  at::Tensor& rstd, const at::Tensor& res = at::Tensor(), at::Tensor x_out = at::Tensor()) {
  const int64_t dim = x.size(-1), rows = x.numel() / dim;
  c10::cuda::CUDAGuard guard(x.device());
  detail::RmsNormForwardArgs args;
  args.members = static_cast<int>(members);
  args.rows = rows / members;
  args.dim = static_cast<int>(dim);
  args.x_dtype = model_dtype(x);
  args.w_dtype = model_dtype(w);
  args.y_dtype = model_dtype(y);
  args.eps = static_cast<float>(eps);
  args.x = x.data_ptr();
  args.w = w.data_ptr();
  args.y = y.data_ptr();
  args.rstd = rstd.data_ptr<float>();
  if (res.defined()) {
    args.res = res.data_ptr();
    args.res_dtype = model_dtype(res);
    args.x_out = x_out.data_ptr();
  }
  check_cuda(kNormWho, detail::rms_norm_forward_launch(args, sm_count(), at::cuda::getCurrentCUDAStream().stream()),
             "forward launch");
}

// One backward launch; grad_w undefined skips the weight gradient. With
// grad_x_out defined it is added to grad_x; with grad_res defined, grad_x is
// also written there in its dtype (a residual norm's branch gradient).
void norm_backward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& rstd, int64_t members,
                   const at::Tensor& grad_y, at::Tensor& grad_x, at::Tensor& grad_w,
                   const at::Tensor& grad_x_out = at::Tensor(), at::Tensor grad_res = at::Tensor()) {
  const int64_t dim = x.size(-1), rows = x.numel() / dim;
  c10::cuda::CUDAGuard guard(x.device());
  const int sms = sm_count();
  detail::RmsNormBackwardArgs args;
  args.members = static_cast<int>(members);
  args.rows = rows / members;
  args.dim = static_cast<int>(dim);
  args.x_dtype = model_dtype(x);
  args.w_dtype = model_dtype(w);
  args.y_dtype = model_dtype(grad_y);
  args.x = x.data_ptr();
  args.w = w.data_ptr();
  args.rstd = rstd.data_ptr<float>();
  args.grad_y = grad_y.data_ptr();
  args.grad_x = grad_x.data_ptr();
  if (grad_x_out.defined()) args.grad_x_out = grad_x_out.data_ptr();
  if (grad_res.defined()) {
    args.grad_res = grad_res.data_ptr();
    args.res_dtype = model_dtype(grad_res);
  }
  at::Tensor partial;
  if (grad_w.defined()) {
    const int blocks = detail::rms_norm_backward_blocks(args.rows, args.dim, args.x_dtype, sms);
    partial = at::empty({members * std::max(blocks, 1), dim}, x.options().dtype(at::kFloat));
    args.grad_w_partial = partial.data_ptr<float>();
    args.grad_w = grad_w.data_ptr();
  }
  check_cuda(kNormWho, detail::rms_norm_backward_launch(args, sms, at::cuda::getCurrentCUDAStream().stream()),
             "backward launch");
}

// A solo RMSNorm (weight (D)) or an ensemble's (weight (E, D), x's rows in E blocks).
struct RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            double eps, at::ScalarType out_dtype) {
    const int64_t members = weight.dim() == 2 ? weight.size(0) : 1;
    const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
    at::Tensor y = at::empty(xc.sizes(), xc.options().dtype(out_dtype));
    at::Tensor rstd = at::empty({xc.numel() / xc.size(-1)}, xc.options().dtype(at::kFloat));
    norm_forward(xc, wc, eps, members, y, rstd);
    ctx->save_for_backward({xc, wc, rstd});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &rstd = saved[2];
    const int64_t members = weight.dim() == 2 ? weight.size(0) : 1;
    const at::Tensor grad_y = norm_grad_input(grad_outputs[0], x);
    at::Tensor grad_x = at::empty(x.sizes(), x.options());
    at::Tensor grad_w;
    if (ctx->needs_input_grad(1)) grad_w = at::empty(weight.sizes(), weight.options());
    norm_backward(x, weight, rstd, members, grad_y, grad_x, grad_w);
    return {grad_x, grad_w, at::Tensor(), at::Tensor()};
  }
};

// s = x + res and rms_norm(s) (solo or an ensemble's), in one pass each way.
struct RmsNormAfterAddFunction : public torch::autograd::Function<RmsNormAfterAddFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                                const at::Tensor& res, const at::Tensor& weight, double eps,
                                                at::ScalarType out_dtype) {
    const int64_t members = weight.dim() == 2 ? weight.size(0) : 1;
    const at::Tensor xc = x.contiguous(), rc = res.contiguous(), wc = weight.contiguous();
    at::Tensor s = at::empty(xc.sizes(), xc.options());
    at::Tensor y = at::empty(xc.sizes(), xc.options().dtype(out_dtype));
    at::Tensor rstd = at::empty({xc.numel() / xc.size(-1)}, xc.options().dtype(at::kFloat));
    norm_forward(xc, wc, eps, members, y, rstd, rc, s);
    ctx->save_for_backward({s, wc, rstd});
    ctx->saved_data["res_dtype"] = static_cast<int64_t>(res.scalar_type());
    return {s, y};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &s = saved[0], &weight = saved[1], &rstd = saved[2];
    const auto res_dtype = static_cast<at::ScalarType>(ctx->saved_data["res_dtype"].toInt());
    const at::Tensor& g_s = grad_outputs[0];
    const at::Tensor& g_y = grad_outputs[1];
    if (!g_y.defined()) {
      // Only s was read on: the residual add's gradient alone.
      if (!g_s.defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
      return {g_s, g_s.to(res_dtype), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const int64_t members = weight.dim() == 2 ? weight.size(0) : 1;
    const at::Tensor grad_y = norm_grad_input(g_y, s);
    const at::Tensor grad_x_out = g_s.defined() ? g_s.to(s.scalar_type()).contiguous() : at::Tensor();
    at::Tensor grad_x = at::empty(s.sizes(), s.options());
    at::Tensor grad_res = at::empty(s.sizes(), s.options().dtype(res_dtype));
    at::Tensor grad_w;
    if (ctx->needs_input_grad(2)) grad_w = at::empty(weight.sizes(), weight.options());
    norm_backward(s, weight, rstd, members, grad_y, grad_x, grad_w, grad_x_out, grad_res);
    return {grad_x, grad_res, grad_w, at::Tensor(), at::Tensor()};
  }
};

// A contiguous copy of t (t itself where it is one) whose data starts on a
// 16-byte boundary, as the kernels' word loads need.
at::Tensor aligned_contiguous(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  if (reinterpret_cast<std::uintptr_t>(c.data_ptr()) % 16 != 0) c = c.clone(at::MemoryFormat::Contiguous);
  return c;
}

void check_aligned(const std::string& who, const at::Tensor& t, const char* name) {
  if (reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 != 0)
    throw std::invalid_argument(who + name + " must start on a 16-byte boundary (a fresh allocation)");
}

// ----------------------------------------------------------------- SwiGLU

constexpr const char* kSwigluWho = "bla: swiglu kernel: ";

void require_swiglu(const at::Tensor& gate, const at::Tensor& up) {
  std::string why;
  if (!swiglu_supported(gate, up, &why)) throw std::invalid_argument(kSwigluWho + why);
}

struct SwigluFunction : public torch::autograd::Function<SwigluFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    require_swiglu(gate, up);
    const at::Tensor gc = gate.contiguous(), uc = up.contiguous();
    at::Tensor h = at::empty(gc.sizes(), gc.options());
    swiglu_forward_out(gc, uc, h);
    ctx->save_for_backward({gc, uc});
    return h;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor()};
    auto saved = ctx->get_saved_variables();
    const at::Tensor &gate = saved[0], &up = saved[1];
    const at::Tensor grad_h = grad_outputs[0].to(gate.scalar_type()).contiguous();
    at::Tensor grad_gate = at::empty(gate.sizes(), gate.options());
    at::Tensor grad_up = at::empty(up.sizes(), up.options());
    swiglu_backward_out(gate, up, grad_h, grad_gate, grad_up);
    return {grad_gate, grad_up};
  }
};

// SwigluArgs over a joined (..., 2H) product and h (..., H): n elements of h in rows of H.
detail::SwigluArgs joined_args(const at::Tensor& joined) {
  detail::SwigluArgs args;
  args.width = joined.size(-1) / 2;
  args.in_stride = joined.size(-1);
  args.n = joined.numel() / 2;
  args.dtype = model_dtype(joined);
  return args;
}

struct SwigluJoinedFunction : public torch::autograd::Function<SwigluJoinedFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& joined) {
    std::string why;
    if (!swiglu_joined_supported(joined, &why)) throw std::invalid_argument(kSwigluWho + why);
    const at::Tensor jc = joined.contiguous();
    auto sizes = jc.sizes().vec();
    sizes.back() /= 2;
    at::Tensor h = at::empty(sizes, jc.options());
    c10::cuda::CUDAGuard guard(jc.device());
    detail::SwigluArgs args = joined_args(jc);
    const auto* base = static_cast<const char*>(jc.data_ptr());
    args.gate = base;
    args.up = base + args.width * jc.element_size();
    args.h = h.data_ptr();
    check_cuda(kSwigluWho, detail::swiglu_forward_launch(args, sm_count(), at::cuda::getCurrentCUDAStream().stream()),
               "joined forward launch");
    ctx->save_for_backward({jc});
    return h;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    if (!grad_outputs[0].defined()) return {at::Tensor()};
    const at::Tensor joined = ctx->get_saved_variables()[0];
    const at::Tensor grad_h = grad_outputs[0].to(joined.scalar_type()).contiguous();
    at::Tensor grad_joined = at::empty(joined.sizes(), joined.options());
    c10::cuda::CUDAGuard guard(joined.device());
    detail::SwigluArgs args = joined_args(joined);
    const auto* base = static_cast<const char*>(joined.data_ptr());
    auto* grad_base = static_cast<char*>(grad_joined.data_ptr());
    const int64_t half = args.width * joined.element_size();
    args.gate = base;
    args.up = base + half;
    args.grad_h = grad_h.data_ptr();
    args.grad_gate = grad_base;
    args.grad_up = grad_base + half;
    check_cuda(kSwigluWho, detail::swiglu_backward_launch(args, sm_count(), at::cuda::getCurrentCUDAStream().stream()),
               "joined backward launch");
    return {grad_joined};
  }
};

// ----------------------------------------------------------------- rotary

constexpr const char* kRotaryWho = "bla: rotary kernel: ";

// --------------------------------------------------------- short convolution

constexpr const char* kConvWho = "bla: short_conv kernel: ";

void require_conv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  std::string why;
  if (!short_conv_supported(x, weight, bias, &why)) throw std::invalid_argument(kConvWho + why);
}

detail::ShortConvArgs conv_args(const at::Tensor& x, const at::Tensor& weight) {
  detail::ShortConvArgs args;
  args.members = weight.dim() == 3 ? static_cast<int>(weight.size(0)) : 1;
  args.seqs = x.size(0) / args.members;
  args.seq = static_cast<int>(x.size(1));
  args.channels = static_cast<int>(x.size(2));
  args.kernel = static_cast<int>(weight.size(-1));
  args.dtype = model_dtype(x);
  return args;
}

struct ShortConvFunction : public torch::autograd::Function<ShortConvFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias) {
    require_conv(x, weight, bias);
    const at::Tensor xc = aligned_contiguous(x), wc = weight.contiguous(), bc = bias.contiguous();
    at::Tensor y = at::empty(xc.sizes(), xc.options());
    short_conv_forward_out(xc, wc, bc, y);
    ctx->save_for_backward({xc, wc, bc});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2];
    at::Tensor grad_x = at::empty(x.sizes(), x.options());
    at::Tensor grad_w = at::empty(weight.sizes(), weight.options());
    at::Tensor grad_b = at::empty(bias.sizes(), bias.options());
    short_conv_backward_out(x, weight, grad_outputs[0], grad_x, grad_w, grad_b);
    return {grad_x, grad_w, grad_b};
  }
};

// ------------------------------------------------------------- head loss

constexpr const char* kHeadWho = "bla: head_loss kernel: ";

struct HeadLossFunction : public torch::autograd::Function<HeadLossFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits,
                                                const at::Tensor& targets) {
    std::string why;
    if (!head_loss_supported(logits, targets, &why)) throw std::invalid_argument(kHeadWho + why);
    const at::Tensor lc = logits.contiguous(), tc = targets.contiguous();
    const int64_t rows = lc.size(0);
    const auto f32 = lc.options().dtype(at::kFloat);
    at::Tensor lse = at::empty({rows}, f32), loss = at::empty({rows}, f32), hit = at::empty({rows}, f32);
    c10::cuda::CUDAGuard guard(lc.device());
    detail::HeadLossArgs args;
    args.rows = rows;
    args.vocab = static_cast<int>(lc.size(1));
    args.dtype = model_dtype(lc);
    args.logits = lc.data_ptr();
    args.targets = tc.data_ptr<int64_t>();
    args.lse = lse.data_ptr<float>();
    args.loss = loss.data_ptr<float>();
    args.hit = hit.data_ptr<float>();
    check_cuda(kHeadWho, detail::head_loss_forward_launch(args, at::cuda::getCurrentCUDAStream().stream()),
               "forward launch");
    ctx->save_for_backward({lc, tc, lse});
    ctx->mark_non_differentiable({hit});
    return {loss, hit};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor()};
    auto saved = ctx->get_saved_variables();
    const at::Tensor &logits = saved[0], &targets = saved[1], &lse = saved[2];
    const at::Tensor grad_loss = grad_outputs[0].to(at::kFloat).contiguous();
    at::Tensor grad_logits = at::empty(logits.sizes(), logits.options());
    c10::cuda::CUDAGuard guard(logits.device());
    detail::HeadLossArgs args;
    args.rows = logits.size(0);
    args.vocab = static_cast<int>(logits.size(1));
    args.dtype = model_dtype(logits);
    args.logits = logits.data_ptr();
    args.targets = targets.data_ptr<int64_t>();
    args.lse = lse.data_ptr<float>();
    args.grad_loss = grad_loss.data_ptr<float>();
    args.grad_logits = grad_logits.data_ptr();
    check_cuda(kHeadWho, detail::head_loss_backward_launch(args, at::cuda::getCurrentCUDAStream().stream()),
               "backward launch");
    return {grad_logits, at::Tensor()};
  }
};

// Elements between one token's heads and the next's in x (B, T, H, D) whose
// heads lie side by side (a view of a joined q, k, v product), or 0 where its
// tokens are not evenly spaced so (the kernel then takes a contiguous copy).
int64_t token_stride(const at::Tensor& x) {
  const int64_t T = x.size(1), H = x.size(2), D = x.size(3);
  if (x.stride(3) != 1 || (H > 1 && x.stride(2) != D)) return 0;
  const int64_t s = T > 1 ? x.stride(1) : (x.size(0) > 1 ? x.stride(0) : H * D);
  if (s < H * D || (x.size(0) > 1 && x.stride(0) != T * s)) return 0;
  return s;
}

// x itself where its tokens are evenly spaced (token_stride), else a contiguous copy.
at::Tensor token_spaced(const at::Tensor& x) { return token_stride(x) > 0 ? x : x.contiguous(); }

// Rotates the defined ones of a and b (at least a) into fresh contiguous tensors.
std::pair<at::Tensor, at::Tensor> rotate(const at::Tensor& a, const at::Tensor& b, int64_t start, double base,
                                         bool inverse) {
  const at::Tensor ac = token_spaced(a);
  const at::Tensor bc = b.defined() ? token_spaced(b) : at::Tensor();
  at::Tensor out_a = at::empty(ac.sizes(), ac.options());
  at::Tensor out_b = bc.defined() ? at::empty(bc.sizes(), bc.options()) : at::Tensor();
  rotary_out(ac, bc, start, base, inverse, out_a, out_b);
  return {out_a, out_b};
}

struct RotaryFunction : public torch::autograd::Function<RotaryFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t start, double base) {
    ctx->saved_data["start"] = start;
    ctx->saved_data["base"] = base;
    return rotate(x, at::Tensor(), start, base, /*inverse=*/false).first;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const int64_t start = ctx->saved_data["start"].toInt();
    const double base = ctx->saved_data["base"].toDouble();
    return {rotate(grad_outputs[0], at::Tensor(), start, base, /*inverse=*/true).first, at::Tensor(), at::Tensor()};
  }
};

struct RotaryPairFunction : public torch::autograd::Function<RotaryPairFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q,
                                                const at::Tensor& k, int64_t start, double base) {
    ctx->saved_data["start"] = start;
    ctx->saved_data["base"] = base;
    auto [q_out, k_out] = rotate(q, k, start, base, /*inverse=*/false);
    return {q_out, k_out};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const int64_t start = ctx->saved_data["start"].toInt();
    const double base = ctx->saved_data["base"].toDouble();
    const at::Tensor &gq = grad_outputs[0], &gk = grad_outputs[1];
    at::Tensor dq, dk;
    if (gq.defined() && gk.defined()) {
      std::tie(dq, dk) = rotate(gq, gk, start, base, /*inverse=*/true);
    } else if (gq.defined()) {
      dq = rotate(gq, at::Tensor(), start, base, /*inverse=*/true).first;
    } else if (gk.defined()) {
      dk = rotate(gk, at::Tensor(), start, base, /*inverse=*/true).first;
    }
    return {dq, dk, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

// ----------------------------------------------------------------- RMSNorm

bool rms_norm_supported(const at::Tensor& x, const at::Tensor& weight, std::string* why) {
  if (!x.defined() || !weight.defined()) return unsupported(why, "x and weight must be defined");
  if (!x.is_cuda() || !weight.is_cuda()) return unsupported(why, "x and weight must be CUDA tensors");
  if (weight.device() != x.device()) return unsupported(why, "x and weight must be on one device");
  if (!kernel_dtype(x.scalar_type())) return unsupported(why, dtype_problem("x", x));
  if (weight.scalar_type() != at::kFloat && weight.scalar_type() != x.scalar_type())
    return unsupported(why, std::string("weight has dtype ") + c10::toString(weight.scalar_type()) +
                                "; the kernel takes float32 or x's dtype (" + c10::toString(x.scalar_type()) + ")");
  if (x.dim() < 1) return unsupported(why, "x must have at least one dim");
  const int64_t dim = x.size(-1);
  if (dim < 1 || dim > detail::kRmsNormMaxDim)
    return unsupported(why, "row width " + std::to_string(dim) + " is not supported; the kernel takes 1 to " +
                                std::to_string(detail::kRmsNormMaxDim));
  if (weight.dim() != 1 || weight.size(0) != dim)
    return unsupported(why, "weight must be (" + std::to_string(dim) + "), got " + shape_text(weight));
  return true;
}

at::Tensor rms_norm_autograd(const at::Tensor& x, const at::Tensor& weight, double eps,
                             std::optional<at::ScalarType> out_dtype) {
  std::string why;
  if (!rms_norm_supported(x, weight, &why)) throw std::invalid_argument(kNormWho + why);
  return RmsNormFunction::apply(x, weight, eps, norm_output_dtype(x, out_dtype));
}

void rms_norm_forward_out(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor& y, at::Tensor& rstd) {
  std::string why;
  if (!rms_norm_supported(x, weight, &why)) throw std::invalid_argument(kNormWho + why);
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
  const int64_t dim = x.size(-1), rows = x.numel() / dim;
  check_output(kNormWho, y, "y", x.sizes(), y.defined() ? norm_output_dtype(x, y.scalar_type()) : x.scalar_type(), x);
  check_output(kNormWho, rstd, "rstd", {rows}, at::kFloat, x);
  norm_forward(xc, wc, eps, 1, y, rstd);
}

void rms_norm_backward_out(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& rstd,
                           const at::Tensor& grad_y, at::Tensor& grad_x, at::Tensor& grad_weight) {
  std::string why;
  if (!rms_norm_supported(x, weight, &why)) throw std::invalid_argument(kNormWho + why);
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
  const at::Tensor gc = norm_grad_input(grad_y, x);
  const int64_t dim = x.size(-1), rows = x.numel() / dim;
  if (gc.sizes() != x.sizes())
    throw std::invalid_argument(std::string(kNormWho) + "grad_y must be shaped like x " + shape_text(x) + ", got " +
                                shape_text(grad_y));
  if (!rstd.defined() || rstd.sizes() != at::IntArrayRef{rows} || rstd.scalar_type() != at::kFloat ||
      !rstd.is_contiguous() || rstd.device() != x.device())
    throw std::invalid_argument(std::string(kNormWho) + "rstd must be the forward's contiguous float32 (" +
                                std::to_string(rows) + ") tensor");
  check_output(kNormWho, grad_x, "grad_x", x.sizes(), x.scalar_type(), x);
  if (grad_weight.defined()) check_output(kNormWho, grad_weight, "grad_weight", {dim}, weight.scalar_type(), x);
  norm_backward(xc, wc, rstd, 1, gc, grad_x, grad_weight);
}

// -------------------------------------------------------- ensemble RMSNorm

bool rms_norm_members_supported(const at::Tensor& x, const at::Tensor& weight, std::string* why) {
  if (!x.defined() || !weight.defined()) return unsupported(why, "x and weight must be defined");
  if (weight.dim() != 2)
    return unsupported(why, "an ensemble's weight must be (members, D), got " + shape_text(weight));
  const int64_t members = weight.size(0);
  if (members < 1 || members > 65535)
    return unsupported(why, "members must be 1 to 65535, got " + std::to_string(members));
  if (x.dim() < 2 || x.size(0) % members != 0)
    return unsupported(
        why, "x " + shape_text(x) + " does not split into " + std::to_string(members) + " members along dim 0");
  return rms_norm_supported(x, weight.select(0, 0), why);
}

at::Tensor rms_norm_members_autograd(const at::Tensor& x, const at::Tensor& weight, double eps,
                                     std::optional<at::ScalarType> out_dtype) {
  std::string why;
  if (!rms_norm_members_supported(x, weight, &why)) throw std::invalid_argument(kNormWho + why);
  return RmsNormFunction::apply(x, weight, eps, norm_output_dtype(x, out_dtype));
}

// ------------------------------------------------- RMSNorm after a residual add

bool rms_norm_after_add_supported(const at::Tensor& x, const at::Tensor& res, const at::Tensor& weight,
                                  std::string* why) {
  if (!res.defined()) return unsupported(why, "res must be defined");
  if (!(weight.defined() && weight.dim() == 2 ? rms_norm_members_supported(x, weight, why)
                                              : rms_norm_supported(x, weight, why)))
    return false;
  if (res.device() != x.device() || res.sizes() != x.sizes())
    return unsupported(why, "res must be shaped like x " + shape_text(x) + " on its device, got " + shape_text(res));
  if (res.scalar_type() != x.scalar_type() && !(res.scalar_type() == at::kBFloat16 && x.scalar_type() == at::kFloat))
    return unsupported(why, std::string("res has dtype ") + c10::toString(res.scalar_type()) + "; the kernel takes x's (" +
                                c10::toString(x.scalar_type()) + ") or bfloat16 for a float32 x");
  return true;
}

std::pair<at::Tensor, at::Tensor> rms_norm_after_add_autograd(const at::Tensor& x, const at::Tensor& res,
                                                              const at::Tensor& weight, double eps,
                                                              std::optional<at::ScalarType> out_dtype) {
  std::string why;
  if (!rms_norm_after_add_supported(x, res, weight, &why)) throw std::invalid_argument(kNormWho + why);
  auto outputs = RmsNormAfterAddFunction::apply(x, res, weight, eps, norm_output_dtype(x, out_dtype));
  return {outputs[0], outputs[1]};
}

// ----------------------------------------------------------------- SwiGLU

bool swiglu_supported(const at::Tensor& gate, const at::Tensor& up, std::string* why) {
  if (!gate.defined() || !up.defined()) return unsupported(why, "gate and up must be defined");
  if (!gate.is_cuda() || !up.is_cuda()) return unsupported(why, "gate and up must be CUDA tensors");
  if (up.device() != gate.device()) return unsupported(why, "gate and up must be on one device");
  if (!kernel_dtype(gate.scalar_type())) return unsupported(why, dtype_problem("gate", gate));
  if (up.scalar_type() != gate.scalar_type())
    return unsupported(why, std::string("gate and up must share one dtype, got ") + c10::toString(gate.scalar_type()) +
                                " and " + c10::toString(up.scalar_type()));
  if (up.sizes() != gate.sizes())
    return unsupported(why, "gate and up must have one shape, got " + shape_text(gate) + " and " + shape_text(up));
  return true;
}

at::Tensor swiglu_autograd(const at::Tensor& gate, const at::Tensor& up) { return SwigluFunction::apply(gate, up); }

void swiglu_forward_out(const at::Tensor& gate, const at::Tensor& up, at::Tensor& h) {
  require_swiglu(gate, up);
  const at::Tensor gc = gate.contiguous(), uc = up.contiguous();
  check_output(kSwigluWho, h, "h", gate.sizes(), gate.scalar_type(), gate);
  c10::cuda::CUDAGuard guard(gate.device());
  detail::SwigluArgs args;
  args.n = args.width = args.in_stride = gate.numel();
  args.dtype = model_dtype(gate);
  args.gate = gc.data_ptr();
  args.up = uc.data_ptr();
  args.h = h.data_ptr();
  check_cuda(kSwigluWho, detail::swiglu_forward_launch(args, sm_count(), at::cuda::getCurrentCUDAStream().stream()),
             "forward launch");
}

void swiglu_backward_out(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& grad_h, at::Tensor& grad_gate,
                         at::Tensor& grad_up) {
  require_swiglu(gate, up);
  const at::Tensor gc = gate.contiguous(), uc = up.contiguous();
  const at::Tensor hc = grad_h.to(gate.scalar_type()).contiguous();
  if (hc.sizes() != gate.sizes())
    throw std::invalid_argument(std::string(kSwigluWho) + "grad_h must be shaped like gate " + shape_text(gate) +
                                ", got " + shape_text(grad_h));
  check_output(kSwigluWho, grad_gate, "grad_gate", gate.sizes(), gate.scalar_type(), gate);
  check_output(kSwigluWho, grad_up, "grad_up", gate.sizes(), gate.scalar_type(), gate);
  c10::cuda::CUDAGuard guard(gate.device());
  detail::SwigluArgs args;
  args.n = args.width = args.in_stride = gate.numel();
  args.dtype = model_dtype(gate);
  args.gate = gc.data_ptr();
  args.up = uc.data_ptr();
  args.grad_h = hc.data_ptr();
  args.grad_gate = grad_gate.data_ptr();
  args.grad_up = grad_up.data_ptr();
  check_cuda(kSwigluWho, detail::swiglu_backward_launch(args, sm_count(), at::cuda::getCurrentCUDAStream().stream()),
             "backward launch");
}

bool swiglu_joined_supported(const at::Tensor& joined, std::string* why) {
  if (!joined.defined()) return unsupported(why, "the joined product must be defined");
  if (!joined.is_cuda()) return unsupported(why, "the joined product must be a CUDA tensor");
  if (!kernel_dtype(joined.scalar_type())) return unsupported(why, dtype_problem("the joined product", joined));
  if (joined.dim() < 1 || joined.size(-1) % 2 != 0)
    return unsupported(why, "the joined product's last dim must be even (gate then up), got " + shape_text(joined));
  return true;
}

at::Tensor swiglu_joined_autograd(const at::Tensor& joined) { return SwigluJoinedFunction::apply(joined); }

// ----------------------------------------------------------------- rotary

bool rotary_supported(const at::Tensor& x, std::string* why) {
  if (!x.defined()) return unsupported(why, "x must be defined");
  if (!x.is_cuda()) return unsupported(why, "x must be a CUDA tensor");
  if (!kernel_dtype(x.scalar_type())) return unsupported(why, dtype_problem("x", x));
  if (x.dim() != 4) return unsupported(why, "x must be (B, T, H, D), got " + shape_text(x));
  const int64_t d = x.size(3);
  if (d < 2 || d % 2 != 0 || d > detail::kRotaryMaxDim)
    return unsupported(why, "head dim " + std::to_string(d) +
                                " is not supported; the kernel takes an even one from 2 to " +
                                std::to_string(detail::kRotaryMaxDim));
  if (x.size(0) * x.size(1) > 0x7fffffffLL || x.size(2) > (1 << 20))
    return unsupported(why, "tensor too large for the kernel's grid: " + shape_text(x));
  return true;
}

bool rotary_pair_supported(const at::Tensor& q, const at::Tensor& k, std::string* why) {
  if (!rotary_supported(q, why) || !rotary_supported(k, why)) return false;
  if (k.device() != q.device() || k.scalar_type() != q.scalar_type() || k.size(0) != q.size(0) ||
      k.size(1) != q.size(1) || k.size(3) != q.size(3)) {
    if (why != nullptr)
      *why = "q and k must share device, dtype, B, T and D, got " + shape_text(q) + " " +
             c10::toString(q.scalar_type()) + " and " + shape_text(k) + " " + c10::toString(k.scalar_type());
    return false;
  }
  return true;
}

at::Tensor rotary_autograd(const at::Tensor& x, int64_t start, double base) {
  std::string why;
  if (!rotary_supported(x, &why)) throw std::invalid_argument(kRotaryWho + why);
  return RotaryFunction::apply(x, start, base);
}

std::pair<at::Tensor, at::Tensor> rotary_pair_autograd(const at::Tensor& q, const at::Tensor& k, int64_t start,
                                                       double base) {
  std::string why;
  if (!rotary_pair_supported(q, k, &why)) throw std::invalid_argument(kRotaryWho + why);
  auto outputs = RotaryPairFunction::apply(q, k, start, base);
  return {outputs[0], outputs[1]};
}

void rotary_out(const at::Tensor& q, const at::Tensor& k, int64_t start, double base, bool inverse, at::Tensor& q_out,
                at::Tensor& k_out) {
  std::string why;
  if (k.defined() ? !rotary_pair_supported(q, k, &why) : !rotary_supported(q, &why))
    throw std::invalid_argument(kRotaryWho + why);
  const at::Tensor qc = token_spaced(q);
  const at::Tensor kc = k.defined() ? token_spaced(k) : at::Tensor();
  check_output(kRotaryWho, q_out, "q_out", q.sizes(), q.scalar_type(), q);
  if (kc.defined()) check_output(kRotaryWho, k_out, "k_out", k.sizes(), k.scalar_type(), q);
  c10::cuda::CUDAGuard guard(q.device());
  detail::RotaryArgs args;
  args.tokens = q.size(0) * q.size(1);
  args.seq = static_cast<int>(q.size(1));
  args.heads_a = static_cast<int>(q.size(2));
  args.heads_b = kc.defined() ? static_cast<int>(k.size(2)) : 0;
  args.dim = static_cast<int>(q.size(3));
  args.start = start;
  args.base = static_cast<float>(base);
  args.inverse = inverse;
  args.dtype = model_dtype(q);
  args.a = qc.data_ptr();
  args.stride_a = token_stride(qc);
  args.out_a = q_out.data_ptr();
  if (kc.defined()) {
    args.b = kc.data_ptr();
    args.stride_b = token_stride(kc);
    args.out_b = k_out.data_ptr();
  }
  const at::Tensor table = at::empty({detail::rotary_table_floats(args.seq, args.dim)}, q.options().dtype(at::kFloat));
  args.table = table.data_ptr<float>();
  check_cuda(kRotaryWho, detail::rotary_launch(args, at::cuda::getCurrentCUDAStream().stream()), "launch");
}

}  // namespace bla::kernels

namespace bla::kernels {

// --------------------------------------------------------- short convolution

bool short_conv_supported(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, std::string* why) {
  if (!x.defined() || !weight.defined() || !bias.defined())
    return unsupported(why, "x, weight and bias must be defined");
  if (!x.is_cuda() || !weight.is_cuda() || !bias.is_cuda())
    return unsupported(why, "x, weight and bias must be CUDA tensors");
  if (weight.device() != x.device() || bias.device() != x.device())
    return unsupported(why, "x, weight and bias must be on one device");
  if (!kernel_dtype(x.scalar_type())) return unsupported(why, dtype_problem("x", x));
  if (weight.scalar_type() != at::kFloat || bias.scalar_type() != at::kFloat)
    return unsupported(why, "weight and bias must be float32, got " + std::string(c10::toString(weight.scalar_type())) +
                                " and " + c10::toString(bias.scalar_type()));
  if (x.dim() != 3) return unsupported(why, "x must be (sequences, T, C), got " + shape_text(x));
  const int64_t C = x.size(2);
  if (x.size(1) < 1 || x.size(1) > 0x7fffffffLL || C < 1 || C > (1 << 20))
    return unsupported(why, "x " + shape_text(x) + " is empty or too large for the kernel");
  const bool members = weight.dim() == 3;
  if (!(weight.dim() == 2 || members) || weight.size(-2) != C || bias.dim() != weight.dim() - 1 || bias.size(-1) != C ||
      (members && (bias.size(0) != weight.size(0) || weight.size(0) < 1 || weight.size(0) > 65535 ||
                   x.size(0) % weight.size(0) != 0)))
    return unsupported(
        why, "weight " + shape_text(weight) + " and bias " + shape_text(bias) + " do not fit x " + shape_text(x) +
                 ": (C, K) and (C), or an ensemble's (E, C, K) and (E, C) with E dividing the sequences");
  const int64_t K = weight.size(-1);
  if (K < 1 || K > detail::kShortConvMaxKernel)
    return unsupported(why, "kernel width " + std::to_string(K) + " is not supported; the kernel takes 1 to " +
                                std::to_string(detail::kShortConvMaxKernel));
  return true;
}

at::Tensor short_conv_autograd(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return ShortConvFunction::apply(x, weight, bias);
}

void short_conv_forward_out(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& y) {
  require_conv(x, weight, bias);
  const at::Tensor xc = aligned_contiguous(x), wc = weight.contiguous(), bc = bias.contiguous();
  check_output(kConvWho, y, "y", x.sizes(), x.scalar_type(), x);
  check_aligned(kConvWho, y, "y");
  c10::cuda::CUDAGuard guard(x.device());
  detail::ShortConvArgs args = conv_args(xc, wc);
  args.x = xc.data_ptr();
  args.w = wc.data_ptr<float>();
  args.b = bc.data_ptr<float>();
  args.y = y.data_ptr();
  check_cuda(kConvWho, detail::short_conv_forward_launch(args, at::cuda::getCurrentCUDAStream().stream()),
             "forward launch");
}

void short_conv_backward_out(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& grad_y,
                             at::Tensor& grad_x, at::Tensor& grad_weight, at::Tensor& grad_bias) {
  at::Tensor bias_like = weight.select(-1, 0);
  require_conv(x, weight, bias_like);
  const at::Tensor xc = aligned_contiguous(x), wc = weight.contiguous();
  const at::Tensor gc = aligned_contiguous(grad_y.to(x.scalar_type()));
  if (gc.sizes() != x.sizes())
    throw std::invalid_argument(std::string(kConvWho) + "grad_y must be shaped like x " + shape_text(x) + ", got " +
                                shape_text(grad_y));
  check_output(kConvWho, grad_x, "grad_x", x.sizes(), x.scalar_type(), x);
  check_aligned(kConvWho, grad_x, "grad_x");
  check_output(kConvWho, grad_weight, "grad_weight", weight.sizes(), at::kFloat, x);
  check_output(kConvWho, grad_bias, "grad_bias", bias_like.sizes(), at::kFloat, x);
  c10::cuda::CUDAGuard guard(x.device());
  detail::ShortConvArgs args = conv_args(xc, wc);
  const int64_t rows = detail::short_conv_partial_rows(args.seqs, args.seq, args.channels, args.dtype);
  at::Tensor partial = at::empty({args.members * rows * (args.kernel + 1) * args.channels}, x.options().dtype(at::kFloat));
  args.x = xc.data_ptr();
  args.w = wc.data_ptr<float>();
  args.grad_y = gc.data_ptr();
  args.grad_x = grad_x.data_ptr();
  args.partial = partial.data_ptr<float>();
  args.grad_w = grad_weight.data_ptr<float>();
  args.grad_b = grad_bias.data_ptr<float>();
  check_cuda(kConvWho, detail::short_conv_backward_launch(args, at::cuda::getCurrentCUDAStream().stream()),
             "backward launch");
}

// ------------------------------------------------------------- head loss

bool head_loss_supported(const at::Tensor& logits, const at::Tensor& targets, std::string* why) {
  if (!logits.defined() || !targets.defined()) return unsupported(why, "logits and targets must be defined");
  if (!logits.is_cuda() || !targets.is_cuda() || targets.device() != logits.device())
    return unsupported(why, "logits and targets must be CUDA tensors on one device");
  if (!kernel_dtype(logits.scalar_type())) return unsupported(why, dtype_problem("logits", logits));
  if (logits.dim() != 2 || logits.size(1) < 1 || logits.size(1) > 0x7fffffffLL)
    return unsupported(why, "logits must be (rows, vocab), got " + shape_text(logits));
  if (targets.scalar_type() != at::kLong || targets.dim() != 1 || targets.size(0) != logits.size(0))
    return unsupported(why, "targets must be int64 (" + std::to_string(logits.size(0)) + "), got " +
                                shape_text(targets) + " " + c10::toString(targets.scalar_type()));
  return true;
}

std::pair<at::Tensor, at::Tensor> head_loss_autograd(const at::Tensor& logits, const at::Tensor& targets) {
  auto out = HeadLossFunction::apply(logits, targets);
  return {out[0], out[1]};
}

}  // namespace bla::kernels
