// Central-difference gradient checking for any differentiable tensor function
// (the C++ API has no torch.autograd.gradcheck). Use float64 inputs and tiny
// shapes: every input element costs two evaluations of the function.
//
//   auto f = [&](const std::vector<at::Tensor>& x) { return my_op(x[0], x[1]); };
//   EXPECT_TRUE(bla::testing::gradients_match(f, {a, b}));
//
// The function may return a tensor of any shape; it is reduced to a scalar by
// a fixed random projection <f(x), w> so that every output element and sign
// matters (a plain sum would miss errors that cancel, e.g. through softmax).
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <vector>

namespace bla::testing {

using TensorFunction = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

struct GradientCheckOptions {
  double step = 1e-6;         // central-difference step
  double atol = 1e-7;         // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-5;
  uint64_t projection_seed = 1234;
  bool require_nonzero = true;  // fail when an input's gradient is all zero (the check would prove nothing)
};

// A fixed random projection weight shaped like `output`.
inline at::Tensor projection_like(const at::Tensor& output, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(output.sizes(), generator, at::TensorOptions().dtype(at::kDouble))
      .to(output.device(), output.scalar_type());
}

// d<f(x), w>/dx_i by autograd, for every input.
inline std::vector<at::Tensor> autograd_gradients(const TensorFunction& f, const std::vector<at::Tensor>& inputs,
                                                  uint64_t seed) {
  std::vector<at::Tensor> leaves;
  leaves.reserve(inputs.size());
  for (const auto& x : inputs) leaves.push_back(x.detach().clone().requires_grad_(true));
  const at::Tensor output = f(leaves);
  const at::Tensor loss = (output * projection_like(output, seed)).sum();
  std::vector<at::Tensor> grads = torch::autograd::grad({loss}, leaves, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                                        /*create_graph=*/false, /*allow_unused=*/true);
  for (size_t i = 0; i < grads.size(); ++i)
    if (!grads[i].defined()) grads[i] = at::zeros_like(inputs[i]);
  return grads;
}

// d<f(x), w>/dx_i by central differences, element by element.
inline std::vector<at::Tensor> numerical_gradients(const TensorFunction& f, const std::vector<at::Tensor>& inputs,
                                                   uint64_t seed, double step) {
  const at::NoGradGuard no_grad;
  std::vector<at::Tensor> point;
  point.reserve(inputs.size());
  for (const auto& x : inputs) point.push_back(x.detach().clone().contiguous());
  const at::Tensor weight = projection_like(f(point), seed);
  const auto loss = [&] { return (f(point) * weight).sum().item<double>(); };

  std::vector<at::Tensor> grads;
  for (auto& x : point) {
    at::Tensor grad = at::zeros_like(x);
    at::Tensor flat = x.view({-1});
    at::Tensor flat_grad = grad.view({-1});
    for (int64_t e = 0; e < flat.numel(); ++e) {
      const double original = flat[e].item<double>();
      flat[e] = original + step;
      const double up = loss();
      flat[e] = original - step;
      const double down = loss();
      flat[e] = original;
      flat_grad[e] = (up - down) / (2.0 * step);
    }
    grads.push_back(grad);
  }
  return grads;
}

// Autograd against central differences for every input; on failure names the
// input, the worst element and both values.
inline ::testing::AssertionResult gradients_match(const TensorFunction& f, const std::vector<at::Tensor>& inputs,
                                                  const GradientCheckOptions& opt = {}) {
  const std::vector<at::Tensor> analytic = autograd_gradients(f, inputs, opt.projection_seed);
  const std::vector<at::Tensor> numeric = numerical_gradients(f, inputs, opt.projection_seed, opt.step);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const at::Tensor a = analytic[i].to(at::kDouble).reshape({-1});
    const at::Tensor n = numeric[i].to(at::kDouble).reshape({-1});
    const at::Tensor excess = (a - n).abs() - (opt.atol + opt.rtol * n.abs());
    const int64_t worst = excess.argmax().item<int64_t>();
    if (excess[worst].item<double>() > 0.0) {
      std::ostringstream os;
      os << "input " << i << " element " << worst << ": autograd " << a[worst].item<double>() << ", finite difference "
         << n[worst].item<double>() << " (atol " << opt.atol << ", rtol " << opt.rtol << ")";
      return ::testing::AssertionFailure() << os.str();
    }
    if (opt.require_nonzero && n.abs().max().item<double>() == 0.0)
      return ::testing::AssertionFailure() << "input " << i << ": finite-difference gradient is all zero; "
                                           << "the check would prove nothing";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace bla::testing
