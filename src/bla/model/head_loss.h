// The LM head fused with cross-entropy. Rows of final hidden states are
// scored against the vocabulary in chunks of rows, so that no (rows x
// vocabulary) float32 logits exist at once; each chunk's gradients (softmax
// minus the one-hot target) are formed while its logits are at hand, and the
// backward pass only scales them. Loss, top-1 hits and the number of scored
// rows come back as device tensors: nothing here waits for the device.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace bla::model {

struct HeadLoss {
  torch::Tensor loss;     // mean cross-entropy over rows whose target is not tasks::kIgnoreIndex (float32 scalar)
  torch::Tensor correct;  // rows whose highest logit is the target (float64 scalar, no gradient)
  torch::Tensor count;    // rows with a target (float64 scalar, no gradient)
};

// hidden (rows, d) and weight (vocab, d), the head's matrix (the embedding
// when tied); targets (rows) int64 with kIgnoreIndex on rows not scored.
// Products run in bf16 when CUDA autocast is on (as the unfused head does),
// else in hidden's dtype; softmax statistics in float32. `chunk_rows` 0 picks
// the chunk so that one chunk's logits hold about 2^25 numbers.
HeadLoss head_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                            int64_t chunk_rows = 0);

// Numbers of logits one chunk holds by default (2^25: 128 MiB in float32).
inline constexpr int64_t kHeadChunkLogits = int64_t{1} << 25;
// Whether fusing pays: only when a batch's logits exceed one chunk (below
// that the fused form saves no memory, and measured slower on an H200).
inline bool head_fusion_pays(int64_t rows, int64_t vocab) { return rows * vocab > kHeadChunkLogits; }

// The same quantities through the plain form (full logits, LibTorch's
// cross_entropy and autograd): the reference the fused form is tested against.
HeadLoss head_cross_entropy_reference(const torch::Tensor& hidden, const torch::Tensor& weight,
                                      const torch::Tensor& targets);

}  // namespace bla::model
