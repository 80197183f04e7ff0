// Whether the CUDA kernels are switched on: BLA_KERNELS=0 turns every kernel
// off (each op then runs its LibTorch form, to measure what the kernels are
// worth), BLA_MODEL_KERNELS=0 only the model's own (RMSNorm, SwiGLU, rotary,
// short convolution, the fused head), BLA_GLA_HEAD_BLOCKS=0 the GLA/GSA
// recurrence's head-dim blocks. Each op's dispatch.cpp asks here before
// it routes to a kernel, and says once in the log when it falls back to its
// LibTorch form.
#pragma once

#include <string>

namespace bla::ops {

// Logs, once per (op, reason) for the life of the process, that `op` runs its
// LibTorch form on CUDA tensors instead of a kernel, and why.
void note_kernel_fallback(const std::string& op, const std::string& why);

// False when the environment sets BLA_KERNELS=0: every op then runs its
// LibTorch form. Read once.
bool kernels_enabled();

// The model's own kernels (RMSNorm, SwiGLU, rotary, short convolution, the
// fused head): off with BLA_KERNELS=0, or alone with BLA_MODEL_KERNELS=0 (the
// mixer kernels stay on).
bool model_kernels_enabled();

// The gated recurrence's tensor-core kernels on head dims wider than they
// take, as passes over blocks of the head dims (gla/head_blocks.h): on
// unless BLA_GLA_HEAD_BLOCKS=0, which sends those dims to the fp32 (SIMT)
// kernels instead, to measure what the blocks are worth. Read once.
bool gla_head_blocks_enabled();

}  // namespace bla::ops
