// LibTorch side of the SWA kernels: argument checks, buffers, stream, and the
// autograd Function whose backward calls the flash-style backward pass.
#include "bla_kernels/swa.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

#include "autograd_common.h"
#include "swa_launch.h"

namespace bla::kernels {
namespace {

using detail::SwaDtype;
using detail::SwaFamily;
using detail::SwaShape;

constexpr const char* kWho = "bla: swa kernel: ";
using detail::check_buffer;
using detail::check_cuda;
using detail::shape_text;
using detail::sizes_text;
using detail::unsupported;

// Throws std::invalid_argument naming what is unsupported.
void require_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window) {
  std::string why;
  if (!swa_supported(q, k, v, window, &why)) throw std::invalid_argument("bla: swa kernel: " + why);
}

SwaShape make_shape(const at::Tensor& q, int64_t window, double scale) {
  SwaShape s;
  s.batch = static_cast<int>(q.size(0));
  s.seq = static_cast<int>(q.size(1));
  s.heads = static_cast<int>(q.size(2));
  s.dim = static_cast<int>(q.size(3));
  // window <= 0 or >= T: every earlier key is visible (full causal attention).
  s.window = (window <= 0 || window >= s.seq) ? s.seq : static_cast<int>(window);
  s.scale = static_cast<float>(scale > 0.0 ? scale : 1.0 / std::sqrt(static_cast<double>(s.dim)));
  return s;
}

SwaFamily pick_family(const at::Tensor& q, SwaPath path) {
  const bool bf16 = q.scalar_type() == at::kBFloat16;
  switch (path) {
    case SwaPath::kSimt:
      return SwaFamily::kSimt;
    case SwaPath::kTensorCore:
      if (!bf16)
        throw std::invalid_argument("bla: swa kernel: the tensor-core path needs bfloat16 inputs, got " +
                                    std::string(c10::toString(q.scalar_type())) + "; use SwaPath::kSimt or kAuto");
      return SwaFamily::kTensorCore;
    case SwaPath::kAuto:
    default:
      return bf16 ? SwaFamily::kTensorCore : SwaFamily::kSimt;
  }
}

// bias (B, T, H) as contiguous float32 on q's device, or undefined.
at::Tensor prepare_bias(const at::Tensor& bias, const at::Tensor& q) {
  if (!bias.defined()) return {};
  if (bias.dim() != 3 || bias.size(0) != q.size(0) || bias.size(1) != q.size(1) || bias.size(2) != q.size(2))
    throw std::invalid_argument("bla: swa kernel: bias must be (B, T, H) = (" + std::to_string(q.size(0)) + ", " +
                                std::to_string(q.size(1)) + ", " + std::to_string(q.size(2)) + "), got " +
                                shape_text(bias));
  if (!bias.is_floating_point())
    throw std::invalid_argument("bla: swa kernel: bias must be a floating-point tensor");
  return bias.to(q.device(), at::kFloat).contiguous();
}

// The two passes as an autograd Function needs them; SwaPlain and SwaBiased
// below are the Functions (two, so no input is ever an undefined tensor).
template <bool kHasBias>
struct SwaPasses {
  static at::Tensor run_forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                                const at::Tensor& v, const at::Tensor& bias, int64_t window, double scale,
                                int64_t path) {
    auto qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
    auto bias_f = prepare_bias(bias, q);
    at::Tensor out = at::empty_like(qc);
    at::Tensor lse = at::empty({q.size(0), q.size(2), q.size(1)}, q.options().dtype(at::kFloat));
    swa_forward_out(qc, kc, vc, bias_f, window, scale, static_cast<SwaPath>(path), out, lse);
    ctx->save_for_backward({qc, kc, vc, out});
    ctx->saved_data["lse"] = lse;
    if (bias_f.defined()) ctx->saved_data["bias"] = bias_f;
    ctx->saved_data["window"] = window;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["path"] = path;
    ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias.defined() ? bias.scalar_type() : at::kFloat);
    return out;
  }

  static torch::autograd::variable_list run_backward(torch::autograd::AutogradContext* ctx,
                                                     torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3];
    at::Tensor lse = ctx->saved_data["lse"].toTensor();
    const auto bias_entry = ctx->saved_data.find("bias");
    const at::Tensor bias = bias_entry != ctx->saved_data.end() ? bias_entry->second.toTensor() : at::Tensor();
    const int64_t window = ctx->saved_data["window"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto path = static_cast<SwaPath>(ctx->saved_data["path"].toInt());
    at::Tensor grad_out = grad_outputs[0].defined() ? grad_outputs[0].to(q.scalar_type()).contiguous()
                                                    : at::zeros_like(q);
    at::Tensor dq = at::empty_like(q), dk = at::empty_like(k), dv = at::empty_like(v);
    at::Tensor dbias;
    if (kHasBias && ctx->needs_input_grad(3)) dbias = at::empty_like(bias);
    swa_backward_out(q, k, v, bias, out, lse, grad_out, window, scale, path, dq, dk, dv, dbias);
    if (dbias.defined()) dbias = dbias.to(static_cast<at::ScalarType>(ctx->saved_data["bias_dtype"].toInt()));
    return {dq, dk, dv, dbias};
  }
};

struct SwaPlain : public torch::autograd::Function<SwaPlain> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, int64_t window, double scale, int64_t path) {
    return SwaPasses<false>::run_forward(ctx, q, k, v, at::Tensor(), window, scale, path);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto grads = SwaPasses<false>::run_backward(ctx, std::move(grad_outputs));
    return {grads[0], grads[1], grads[2], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct SwaBiased : public torch::autograd::Function<SwaBiased> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const at::Tensor& bias, int64_t window, double scale, int64_t path) {
    return SwaPasses<true>::run_forward(ctx, q, k, v, bias, window, scale, path);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto grads = SwaPasses<true>::run_backward(ctx, std::move(grad_outputs));
    return {grads[0], grads[1], grads[2], grads[3], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool swa_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window, std::string* why) {
  if (const std::string problem = detail::qkv_problem(q, k, v); !problem.empty()) return unsupported(why, problem);
  if (window < 0) return unsupported(why, "window must be >= 0 (0 = full causal), got " + std::to_string(window));
  return true;
}

void swa_forward_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                     int64_t window, double scale, SwaPath path, at::Tensor& out, at::Tensor& lse) {
  require_supported(q, k, v, window);
  const SwaFamily family = pick_family(q, path);
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const at::Tensor bias_f = prepare_bias(bias, q);
  check_buffer(kWho, out, "out", q.sizes(), q.scalar_type(), q);
  check_buffer(kWho, lse, "lse", {q.size(0), q.size(2), q.size(1)}, at::kFloat, q);

  const detail::KernelDeviceGuard guard(q.device());
  detail::SwaForwardArgs args;
  args.shape = make_shape(q, window, scale);
  args.dtype = q.scalar_type() == at::kBFloat16 ? SwaDtype::kBFloat16 : SwaDtype::kFloat32;
  args.q = qc.data_ptr();
  args.k = kc.data_ptr();
  args.v = vc.data_ptr();
  args.bias = bias_f.defined() ? bias_f.data_ptr<float>() : nullptr;
  args.out = out.data_ptr();
  args.lse = lse.data_ptr<float>();
  check_cuda(kWho, detail::swa_forward_launch(args, family, detail::kernel_stream(q)), "forward launch");
}

void swa_backward_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                      const at::Tensor& out, const at::Tensor& lse, const at::Tensor& grad_out, int64_t window,
                      double scale, SwaPath path, at::Tensor& grad_q, at::Tensor& grad_k, at::Tensor& grad_v,
                      at::Tensor& grad_bias) {
  require_supported(q, k, v, window);
  const SwaFamily family = pick_family(q, path);
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const at::Tensor oc = out.contiguous(), gc = grad_out.to(q.scalar_type()).contiguous();
  const at::Tensor bias_f = prepare_bias(bias, q);
  if (oc.sizes() != q.sizes() || gc.sizes() != q.sizes())
    throw std::invalid_argument("bla: swa kernel: out and grad_out must be shaped like q " + shape_text(q));
  check_buffer(kWho, lse, "lse", {q.size(0), q.size(2), q.size(1)}, at::kFloat, q);
  check_buffer(kWho, grad_q, "grad_q", q.sizes(), q.scalar_type(), q);
  check_buffer(kWho, grad_k, "grad_k", q.sizes(), q.scalar_type(), q);
  check_buffer(kWho, grad_v, "grad_v", q.sizes(), q.scalar_type(), q);
  if (grad_bias.defined()) {
    if (!bias_f.defined()) throw std::invalid_argument("bla: swa kernel: grad_bias given without bias");
    check_buffer(kWho, grad_bias, "grad_bias", {q.size(0), q.size(1), q.size(2)}, at::kFloat, q);
  }

  const detail::KernelDeviceGuard guard(q.device());
  // delta, and with a bias gradient each query's sum of dZ behind it (swa_launch.h).
  at::Tensor delta = at::empty({grad_bias.defined() ? 2 : 1, q.size(0), q.size(2), q.size(1)},
                               q.options().dtype(at::kFloat));
  detail::SwaBackwardArgs args;
  args.shape = make_shape(q, window, scale);
  args.dtype = q.scalar_type() == at::kBFloat16 ? SwaDtype::kBFloat16 : SwaDtype::kFloat32;
  args.q = qc.data_ptr();
  args.k = kc.data_ptr();
  args.v = vc.data_ptr();
  args.bias = bias_f.defined() ? bias_f.data_ptr<float>() : nullptr;
  args.out = oc.data_ptr();
  args.grad_out = gc.data_ptr();
  args.lse = lse.data_ptr<float>();
  args.delta = delta.data_ptr<float>();
  args.grad_q = grad_q.data_ptr();
  args.grad_k = grad_k.data_ptr();
  args.grad_v = grad_v.data_ptr();
  args.grad_bias = grad_bias.defined() ? grad_bias.data_ptr<float>() : nullptr;
  check_cuda(kWho, detail::swa_backward_launch(args, family, detail::kernel_stream(q)), "backward launch");
}

at::Tensor swa_forward_autograd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                                double scale, const at::Tensor& bias, SwaPath path) {
  require_supported(q, k, v, window);
  pick_family(q, path);  // reject a bad path before autograd records anything
  const auto path_code = static_cast<int64_t>(path);
  if (bias.defined()) {
    prepare_bias(bias, q);  // shape check with a clear message
    return SwaBiased::apply(q, k, v, bias, window, scale, path_code);
  }
  return SwaPlain::apply(q, k, v, window, scale, path_code);
}

}  // namespace bla::kernels
