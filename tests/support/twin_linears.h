// Two torch::nn::Linear layers of one shape holding the same weights, on one
// device: one for the code under test, one for its reference (the optimizer
// tests step each with another optimizer and compare the weights).
#pragma once

#include <torch/torch.h>

#include <utility>

namespace bla::testing {

inline std::pair<torch::nn::Linear, torch::nn::Linear> twin_linears(int64_t in, int64_t out,
                                                                    const torch::Device& device = torch::kCPU) {
  torch::nn::Linear a(in, out), b(in, out);
  a->to(device);
  b->to(device);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < a->parameters().size(); ++i) b->parameters()[i].copy_(a->parameters()[i]);
  return {a, b};
}

}  // namespace bla::testing
