// chunked_gated_recurrence (gla.h), the recurrence under GLA and both passes
// of GSA: which form runs. On CUDA tensors from a zero state (training), the
// kernels (kernels/gla_*: bla_kernels/gla.h) where they support the inputs
// and BLA_KERNELS is not 0, with the gradients from three more forward passes
// of the kernels (backward.h); everywhere else, and from a given state
// (prefill), the chunked LibTorch form (chunked.cpp), with one log line on
// CUDA saying why. The kernels compute in float32 for float32, half and
// bfloat16 inputs, which they read as they are (where any input is half or
// bfloat16, with tensor-core products of tf32 operands where the head dims
// allow, on wider heads in blocks of the head dims that they take), and in
// float64 for float64, as the LibTorch form does; on their
// path the final state carries no gradient (it is only read after a
// prefill, which runs the LibTorch form).
#include <torch/torch.h>

#include <string>

#include "bla/ops/checks.h"
#include "bla/ops/gla/backward.h"
#include "bla/ops/gla/gla.h"
#include "bla/ops/gla/head_blocks.h"
#include "bla/ops/gla/internal.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/gla.h"
#endif

namespace bla::ops {

namespace {

#ifdef BLA_HAVE_CUDA_KERNELS
// The kernels' passes and gate gradient (bla_kernels/gla.h) for
// GatedRecurrenceFunction; kTensorCores where an input is bf16 or half.
// With tensor cores, head dims wider than they take run as passes over
// blocks of them (head_blocks.h), unless BLA_GLA_HEAD_BLOCKS=0. A whole pass
// takes and hands over chunk states (backward.h, PassStates); passes over
// blocks share none.
template <bool kTensorCores>
struct KernelPass {
  static at::Tensor run(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                        DecayAxis axis, double scale, at::Tensor* final_state, bool reversed,
                        const PassStates& states = {}) {
    kernels::GatedRecurrenceKernelOptions options;
    options.value_axis = axis == DecayAxis::Value;
    options.scale = scale;
    options.tensor_cores = kTensorCores;
    options.reversed = reversed;
    const StatefulGatedPass pass = [&](const at::Tensor& bq, const at::Tensor& bk, const at::Tensor& bv,
                                       const at::Tensor& bg, at::Tensor* state) {
      return kernels::gated_recurrence_forward(bq, bk, bv, bg, options, state);
    };
    const int64_t most = kernels::kGatedRecurrenceTensorCoreDim;
    // (float64 never takes the tensor cores, so its passes stay whole.)
    const bool whole = !kTensorCores || q.scalar_type() == at::kDouble || !gla_head_blocks_enabled() ||
                       (q.size(3) <= most && v.size(3) <= most);
    if (whole) {
      options.entering_states = states.given;
      return kernels::gated_recurrence_forward(q, k, v, g, options, final_state, states.computed);
    }
    return over_head_blocks(pass, q, k, v, g, axis, most, final_state);
  }
  static at::Tensor gate_gradient(const at::Tensor& a, const at::Tensor& da, const at::Tensor& c, const at::Tensor& dc,
                                  const at::Tensor& g) {
    return kernels::gated_recurrence_gate_gradient(a, da, c, dc, g);
  }
};
#endif

}  // namespace

GatedRecurrenceResult chunked_gated_recurrence(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               const at::Tensor& g, DecayAxis axis, const at::Tensor& initial_state,
                                               int64_t chunk, int64_t subchunk, double scale) {
  if (q.is_cuda() && q.size(2) > 0) {
#ifdef BLA_HAVE_CUDA_KERNELS
    std::string why = "turned off by BLA_KERNELS=0";
    if (initial_state.defined()) why = "it starts from a given state (prefill)";
    if (kernels_enabled() && !initial_state.defined()) {
      // The kernels read bf16, half and float32 inputs as they are (in float32) and float64 in float64.
      const auto dtype = compute_dtype(q.scalar_type());
      const auto as_computed = [&](const at::Tensor& t) {
        return dtype == at::kDouble || t.scalar_type() == at::kDouble ? t.to(dtype) : t;
      };
      const auto qc = as_computed(q), kc = as_computed(k), vc = as_computed(v), gc = as_computed(g);
      if (kernels::gated_recurrence_supported(qc, kc, vc, gc, axis == DecayAxis::Value, &why)) {
        const bool value_axis = axis == DecayAxis::Value;
        // Any input in bf16 or half puts the recurrence in that precision's budget (GSA's passes
        // take float32 queries and slot weights beside bf16 keys or values).
        const auto half = [](const at::Tensor& t) {
          return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
        };
        const bool half_inputs = half(q) || half(k) || half(v) || half(g);
        const auto outputs = half_inputs
                                 ? GatedRecurrenceFunction<KernelPass<true>>::apply(qc, kc, vc, gc, value_axis, scale)
                                 : GatedRecurrenceFunction<KernelPass<false>>::apply(qc, kc, vc, gc, value_axis, scale);
        return {outputs[0].to(q.scalar_type()), outputs[1]};
      }
    }
    note_kernel_fallback("gated recurrence (gla, gsa)", why);
#else
    note_kernel_fallback("gated recurrence (gla, gsa)", "bla-train was built without its CUDA kernels");
#endif
  }
  return gla_internal::chunked_gated_recurrence_libtorch(q, k, v, g, axis, initial_state, chunk, subchunk, scale);
}

}  // namespace bla::ops
