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
// Whether fusing pays: when a batch's float32 logits would take more than
// 8 GiB (2^31 numbers). The fused form saves their memory but runs slower
// (on an H200, 125M model, 16,384 x 50,304 logits: 0.82x the plain head's
// tokens/s at half the peak memory, measured before the plain head ran the
// loss kernel; docs/performance.md), so below that the plain head is the
// better default.
inline constexpr int64_t kHeadFusionLogits = int64_t{1} << 31;
inline bool head_fusion_pays(int64_t rows, int64_t vocab) { return rows * vocab > kHeadFusionLogits; }

// The same quantities through the plain form (full logits, LibTorch's
// cross_entropy and autograd): the reference the fused form is tested against.
HeadLoss head_cross_entropy_reference(const torch::Tensor& hidden, const torch::Tensor& weight,
                                      const torch::Tensor& targets);

// The plain head as training runs it: full logits, and on CUDA (model kernels
// on) the cross-entropy as one kernel each way over the logits in the
// product's dtype (kernels/model_head.cu, as head_cross_entropy_members runs
// it) instead of LibTorch's float32 copy, log_softmax, gather and argmax and
// their backwards; elsewhere head_cross_entropy_reference.
HeadLoss head_cross_entropy_plain(const torch::Tensor& hidden, const torch::Tensor& weight,
                                  const torch::Tensor& targets);

// An ensemble's heads (model/ensemble.h), each member's rows against its own
// matrix in one batched product: hidden (E, rows, d), weight (E, vocab, d),
// targets (E, rows). Loss, correct and count are (E): member e's numbers are
// those of head_cross_entropy_reference on its rows.
HeadLoss head_cross_entropy_members(const torch::Tensor& hidden, const torch::Tensor& weight,
                                    const torch::Tensor& targets);

}  // namespace bla::model
