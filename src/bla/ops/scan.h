// Running sums along one dimension of a tensor, computed with that dimension
// innermost: in blocks of 64 positions, then over the blocks' totals. On
// CUDA, PyTorch scans any other dimension with one thread per column walking
// the whole length in turn (a (B, T, H) tensor summed over T runs B * H
// threads through T dependent steps), while these are a few short,
// parallel, innermost scans. Differentiable (composed of LibTorch ops whose
// backward scans innermost too); any device and floating dtype. The result
// may be non-contiguous.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace bla::ops {

// sum_{u <= t} x_u along dim (what x.cumsum(dim) gives).
at::Tensor running_sum(const at::Tensor& x, int64_t dim);

// sum_{u >= t} x_u along dim (x.flip(dim).cumsum(dim).flip(dim)).
at::Tensor reverse_running_sum(const at::Tensor& x, int64_t dim);

}  // namespace bla::ops
