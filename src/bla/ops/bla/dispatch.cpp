// blurry_window_attention: which form runs. On CUDA tensors the fused kernel
// (kernels/bla_*.cu; the SWA kernel when N == W, which is exactly SWA(W))
// where the shape is supported and BLA_KERNELS is not 0; everywhere else the
// chunked form (chunked.cpp), with one log line on CUDA saying why.
#include <torch/torch.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "bla/ops/attention/attention.h"
#include "bla/ops/bla/bla.h"
#include "bla/ops/bla/internal.h"
#include "bla/ops/bla/modal.h"
#include "bla/ops/checks.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/bla.h"
#include "bla_kernels/swa.h"
#endif

namespace bla::ops {

namespace {

#ifdef BLA_HAVE_CUDA_KERNELS
// The fused kernels' tables for (W, N) on `device`, or null with *why when
// the modal form is not usable for them (cached either way).
std::shared_ptr<const kernels::BlaChunkTables> kernel_tables(int64_t window, int64_t slots, at::Device device,
                                                             std::string* why) {
  using Key = std::tuple<int64_t, int64_t, int>;
  struct Entry {
    std::shared_ptr<const kernels::BlaChunkTables> tables;
    std::string why;
  };
  static std::mutex mutex;
  static std::map<Key, Entry> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  const Key key{window, slots, static_cast<int>(device.index())};
  auto it = cache.find(key);
  if (it == cache.end()) {
    Entry entry;
    if (bla_modal_supported(window, slots, kernels::kBlaKernelChunk, &entry.why)) {
      const BlaModalOperators modal = make_bla_modal_operators(window, slots, kernels::kBlaKernelChunk);
      const BlaOperators ops = make_bla_operators(window, slots, kernels::kBlaKernelChunk);
      entry.tables = std::make_shared<const kernels::BlaChunkTables>(
          kernels::make_bla_chunk_tables(window, slots, ops.kernel, modal.basis, modal.basis_inverse, modal.alpha,
                                         modal.beta, modal.beta_t, modal.partner, device));
    }
    it = cache.emplace(key, std::move(entry)).first;
  }
  if (why != nullptr) *why = it->second.why;
  return it->second.tables;
}
#endif

// Which kernel runs the chunked form from empty slots on CUDA tensors.
enum class KernelRoute { kNone, kSlidingWindow, kFused };

KernelRoute kernel_route(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlaOptions& opt,
                         std::string* why) {
  const auto none = [&](const std::string& text) {
    if (why != nullptr) *why = text;
    return KernelRoute::kNone;
  };
  if (!q.is_cuda()) return none("q, k and v must be CUDA tensors");
#ifdef BLA_HAVE_CUDA_KERNELS
  if (!kernels_enabled()) return none("turned off by BLA_KERNELS=0");
  // N == W is exactly SWA(W) (docs/bla.md, "N = W"), the age mask included.
  std::string reason;
  if (opt.slots == opt.window) {
    if (!kernels::swa_supported(q, k, v, opt.window, &reason)) return none(reason);
    return KernelRoute::kSlidingWindow;
  }
  if (!kernels::bla_chunk_supported(q, k, v, opt.slots, &reason)) return none(reason);
  if (!kernel_tables(opt.window, opt.slots, q.device(), &reason)) return none(reason);
  return KernelRoute::kFused;
#else
  return none("bla-train was built without its CUDA kernels");
#endif
}

}  // namespace

at::Tensor blurry_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const BlaOptions& opt) {
  opt.validate();
  bla_internal::check_sequence_inputs("blurry_window_attention", q, k, v);
  if (!q.is_cuda()) return bla_internal::chunked_forward(q, k, v, opt, {}, {}, 0, nullptr);
  std::string why;
  switch (kernel_route(q, k, v, opt, &why)) {
    case KernelRoute::kSlidingWindow:
      return sliding_window_attention(q, k, v, WindowOptions{opt.window, resolve_scale(opt.scale, q.size(3))});
#ifdef BLA_HAVE_CUDA_KERNELS
    case KernelRoute::kFused:
      return kernels::bla_attention(q, k, v, *kernel_tables(opt.window, opt.slots, q.device(), nullptr),
                                    resolve_scale(opt.scale, q.size(3)));
#endif
    default:
      note_kernel_fallback("blurry_window_attention", why);
      return bla_internal::chunked_forward(q, k, v, opt, {}, {}, 0, nullptr);
  }
}

bool bla_kernel_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlaOptions& opt,
                          std::string* why) {
  opt.validate();
  bla_internal::check_sequence_inputs("bla_kernel_supported", q, k, v);
  return kernel_route(q, k, v, opt, why) != KernelRoute::kNone;
}

}  // namespace bla::ops
