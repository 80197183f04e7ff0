// A short causal depthwise convolution: each channel c of x (B, T, C) becomes
//   y_t[c] = bias[c] + sum_{k<K} weight[c, k] * x_{t-(K-1)+k}[c]
// with zeros before the first token. Mamba2's x/B/C path uses it (kernel 4),
// and `model.short_conv: K` puts one before every mixer (Zoology's MQAR
// blocks). An ensemble's weight is (E, C, K) and its bias (E, C)
// (mixers/common/members.h).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>

namespace bla::mixers {

// The convolution over `window`, which holds the K-1 inputs before the first
// output and then the `length` inputs along `dim`. The training forward and the
// decode step both go through here, so they add the same terms in the same
// order (decoding reproduces the forward to the last bit).
torch::Tensor causal_depthwise_conv(const torch::Tensor& window, int64_t dim, int64_t length,
                                    const torch::Tensor& weight, const torch::Tensor& bias);

// The convolution of x (B, T, C) with zeros before the first token, as a
// training forward: on CUDA one fused kernel each way (kernels/model_conv.cu;
// its forward has the LibTorch form's bits, so decoding still reproduces it;
// x may be a view, such as Mamba2's slice of its input projection), else
// causal_depthwise_conv. The ShortConv module and the Mamba2-like mixer's
// x/B/C path run it.
torch::Tensor short_conv(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

// The same convolution as a layer with its own parameters (initialised like
// torch.nn.Conv1d: uniform in +-1/sqrt(K)) and its decode cache.
class ShortConvImpl : public torch::nn::Module {
 public:
  ShortConvImpl(int64_t channels, int64_t kernel);
  // x (B, T, C) -> (B, T, C).
  torch::Tensor forward(const torch::Tensor& x);
  // The decode cache for `batch` sequences: the last K-1 inputs, zeros at first, (B, K-1, C).
  torch::Tensor initial_cache(int64_t batch, const torch::TensorOptions& options) const;
  // One token x (B, C) -> (B, C); moves `cache` on by one token.
  torch::Tensor step(const torch::Tensor& x, torch::Tensor& cache);
  // Numbers the cache keeps per sequence: (K-1) * C.
  int64_t cache_numel() const { return (kernel_ - 1) * channels_; }
  int64_t kernel() const { return kernel_; }

 private:
  int64_t channels_, kernel_;
  torch::Tensor weight_;  // (C, K): column k weighs the input K-1-k tokens back
  torch::Tensor bias_;    // (C)
};
TORCH_MODULE(ShortConv);

}  // namespace bla::mixers
