#include "bla/model/head_loss.h"

#include "bla/compat.h"
#include "bla/ops/kernel_switch.h"
#include "bla/tasks/task.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/model.h"
#endif

#include <torch/torch.h>

#include <algorithm>
#include <string>

namespace bla::model {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::ScalarType product_dtype(const torch::Tensor& hidden) {
  return hidden.is_cuda() && compat::cuda_autocast_enabled() ? at::kBFloat16 : hidden.scalar_type();
}

// Softmax statistics in float32 at least (float64 stays float64, for tests).
at::ScalarType statistics_dtype(at::ScalarType product) { return product == at::kDouble ? at::kDouble : at::kFloat; }

class HeadCrossEntropy : public torch::autograd::Function<HeadCrossEntropy> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& hidden, const torch::Tensor& weight,
                               const torch::Tensor& targets, int64_t chunk_rows) {
    const auto compute = product_dtype(hidden);
    const auto h = hidden.to(compute), w = weight.to(compute);
    const int64_t rows = h.size(0), vocab = w.size(0);
    const int64_t chunk = chunk_rows > 0 ? chunk_rows : std::max<int64_t>(1, kHeadChunkLogits / std::max<int64_t>(vocab, 1));
    const auto stats = statistics_dtype(compute);
    const auto float_options = hidden.options().dtype(stats);
    const auto valid = targets.ne(tasks::kIgnoreIndex);
    const auto count = valid.sum().to(at::kDouble);
    const auto denominator = count.clamp_min(1).to(stats);
    const bool want_grad = ctx->needs_input_grad(0) || ctx->needs_input_grad(1);
    auto loss_sum = torch::zeros({}, float_options);
    auto correct = torch::zeros({}, float_options.dtype(at::kDouble));
    torch::Tensor grad_hidden, grad_weight;
    if (want_grad) {
      grad_hidden = torch::empty({rows, h.size(1)}, hidden.options());
      grad_weight = torch::zeros({vocab, w.size(1)}, float_options);
    }
    for (int64_t start = 0; start < rows; start += chunk) {
      const int64_t n = std::min(chunk, rows - start);
      const auto hc = h.narrow(0, start, n);
      const auto tc = targets.narrow(0, start, n);
      const auto vc = valid.narrow(0, start, n).to(stats);
      const auto index = tc.clamp_min(0).unsqueeze(1);  // ignored rows point at 0, then count for nothing
      auto logits = at::mm(hc, w.t()).to(stats);        // (n, vocab)
      const auto lse = logits.logsumexp(-1);
      loss_sum.add_(((lse - logits.gather(1, index).squeeze(1)) * vc).sum());
      correct.add_((logits.argmax(-1).eq(tc).to(stats) * vc).sum().to(at::kDouble));
      if (!want_grad) continue;
      // d loss / d logits = (softmax - onehot(target)) * valid / count, in place over the logits.
      auto g = logits.sub_(lse.unsqueeze(1)).exp_();
      g.scatter_add_(1, index, -vc.unsqueeze(1));
      g.mul_((vc / denominator).unsqueeze(1));
      const auto gc = g.to(compute);
      grad_hidden.narrow(0, start, n).copy_(at::mm(gc, w));
      grad_weight.add_(at::mm(gc.t(), hc));
    }
    ctx->saved_data["grad_hidden"] = grad_hidden;
    ctx->saved_data["grad_weight"] = grad_weight;
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    auto loss = loss_sum / denominator;
    ctx->mark_non_differentiable({correct, count});
    return {loss, correct, count};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto& scale = grad_outputs[0];
    auto grad_hidden = ctx->saved_data["grad_hidden"].toTensor();
    auto grad_weight = ctx->saved_data["grad_weight"].toTensor();
    const auto weight_dtype = static_cast<at::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
    torch::Tensor dh, dw;
    if (grad_hidden.defined() && scale.defined()) {
      dh = grad_hidden * scale.to(grad_hidden.scalar_type());
      dw = (grad_weight * scale.to(grad_weight.scalar_type())).to(weight_dtype);
    }
    return {dh, dw, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

HeadLoss head_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                            int64_t chunk_rows) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "head_cross_entropy: hidden (rows, d) and weight (vocab, d) expected, got ", hidden.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0),
              "head_cross_entropy: targets must be (rows), got ", targets.sizes());
  auto out = HeadCrossEntropy::apply(hidden, weight, targets, chunk_rows);
  return {out[0], out[1], out[2]};
}

HeadLoss head_cross_entropy_reference(const torch::Tensor& hidden, const torch::Tensor& weight,
                                      const torch::Tensor& targets) {
  const auto compute = product_dtype(hidden);
  auto logits = at::mm(hidden.to(compute), weight.to(compute).t()).to(statistics_dtype(compute));
  const auto valid = targets.ne(tasks::kIgnoreIndex);
  HeadLoss out;
  out.loss = torch::nn::functional::cross_entropy(
      logits, targets, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(tasks::kIgnoreIndex));
  out.correct = (logits.argmax(-1).eq(targets) & valid).sum().to(at::kDouble).detach();
  out.count = valid.sum().to(at::kDouble);
  return out;
}

HeadLoss head_cross_entropy_plain(const torch::Tensor& hidden, const torch::Tensor& weight,
                                  const torch::Tensor& targets) {
  if (hidden.is_cuda() && ops::model_kernels_enabled()) {
    // One member: the batched form's kernel path over (1, rows, vocab) logits.
    const auto one = head_cross_entropy_members(hidden.unsqueeze(0), weight.unsqueeze(0), targets.unsqueeze(0));
    return {one.loss.squeeze(0), one.correct.squeeze(0), one.count.squeeze(0)};
  }
  return head_cross_entropy_reference(hidden, weight, targets);
}

HeadLoss head_cross_entropy_members(const torch::Tensor& hidden, const torch::Tensor& weight,
                                    const torch::Tensor& targets) {
  TORCH_CHECK(hidden.dim() == 3 && weight.dim() == 3 && targets.dim() == 2 && hidden.size(0) == weight.size(0) &&
                  hidden.size(2) == weight.size(2) && targets.size(0) == hidden.size(0) && targets.size(1) == hidden.size(1),
              "head_cross_entropy_members: hidden (E, rows, d), weight (E, vocab, d) and targets (E, rows) expected, got ",
              hidden.sizes(), ", ", weight.sizes(), " and ", targets.sizes());
  const auto compute = product_dtype(hidden);
  const auto valid = targets.ne(tasks::kIgnoreIndex);
#ifdef BLA_HAVE_CUDA_KERNELS
  // On CUDA the cross-entropy is one kernel each way over the logits in the
  // product's dtype (kernels/model_head.cu), instead of a float32 copy,
  // log_softmax, gather and argmax and their backwards.
  if (hidden.is_cuda() && ops::model_kernels_enabled()) {
    auto products = at::bmm(hidden.to(compute), weight.to(compute).transpose(1, 2));  // (E, rows, vocab)
    const int64_t E = products.size(0), rows = products.size(1);
    auto flat = products.view({E * rows, products.size(2)});
    std::string why;
    if (kernels::head_loss_supported(flat, targets.reshape(-1), &why)) {
      auto [per_row, hit] = kernels::head_loss_autograd(flat, targets.reshape(-1));
      HeadLoss out;
      out.count = valid.sum(1).to(at::kDouble);
      out.loss = per_row.view({E, rows}).sum(1) / out.count.clamp_min(1).to(per_row.scalar_type());
      out.correct = hit.view({E, rows}).sum(1).to(at::kDouble).detach();
      return out;
    }
    ops::note_kernel_fallback("head_cross_entropy_members", why);
  }
#endif
  auto logits = at::bmm(hidden.to(compute), weight.to(compute).transpose(1, 2)).to(statistics_dtype(compute));
  const int64_t E = logits.size(0), rows = logits.size(1);
  auto per_row = torch::nn::functional::cross_entropy(logits.reshape({E * rows, -1}), targets.reshape(-1),
                                                      torch::nn::functional::CrossEntropyFuncOptions()
                                                          .ignore_index(tasks::kIgnoreIndex)
                                                          .reduction(torch::kNone));
  HeadLoss out;
  out.count = valid.sum(1).to(at::kDouble);
  out.loss = per_row.view({E, rows}).sum(1) / out.count.clamp_min(1).to(per_row.scalar_type());
  out.correct = (logits.argmax(-1).eq(targets) & valid).sum(1).to(at::kDouble).detach();
  return out;
}

}  // namespace bla::model
