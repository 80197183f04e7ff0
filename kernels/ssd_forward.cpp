// bla_kernels/ssd.h on tensors: the checks, the zero padding of N and P to
// the compiled 64 or 128, the workspace and the launch (ssd_kernels.cu).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/torch.h>

#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd_common.h"
#include "bla_kernels/ssd.h"
#include "ssd_launch.h"

namespace bla::kernels {

namespace {

const std::string kWho = "bla: ssd kernel: ";

// The compiled width a dimension of 1..128 runs at.
int64_t padded_width(int64_t d) { return d <= 64 ? 64 : 128; }

// t with its last dimension zero-padded to `width`.
at::Tensor pad_last(const at::Tensor& t, int64_t width) {
  const int64_t extra = width - t.size(-1);
  return extra == 0 ? t : at::constant_pad_nd(t, {0, extra}, 0);
}

detail::SsdShape shape_of(const at::Tensor& x, const at::Tensor& Bm) {
  detail::SsdShape s;
  s.batch = static_cast<int>(x.size(0));
  s.seq = static_cast<int>(x.size(1));
  s.heads = static_cast<int>(x.size(2));
  s.head_dim = static_cast<int>(padded_width(x.size(3)));
  s.groups = static_cast<int>(Bm.size(2));
  s.d_state = static_cast<int>(padded_width(Bm.size(3)));
  return s;
}

detail::SsdDtype dtype_of(const at::Tensor& x) {
  return x.scalar_type() == at::kBFloat16 ? detail::SsdDtype::kBFloat16 : detail::SsdDtype::kFloat32;
}

}  // namespace

bool ssd_supported(const at::Tensor& x, const at::Tensor& log_decay, const at::Tensor& key_scale, const at::Tensor& Bm,
                   const at::Tensor& Cm, std::string* why) {
  using detail::unsupported;
  for (const at::Tensor* t : {&x, &log_decay, &Bm, &Cm}) {
    if (!t->defined() || !t->is_cuda()) return unsupported(why, "x, log_decay, Bm and Cm must be CUDA tensors");
    if (t->device() != x.device()) return unsupported(why, "the inputs must be on one device");
  }
  if (key_scale.defined() && (!key_scale.is_cuda() || key_scale.device() != x.device()))
    return unsupported(why, "key_scale must be on x's device");
  const auto dtype = x.scalar_type();
  if (dtype != at::kFloat && dtype != at::kBFloat16)
    return unsupported(why, std::string("dtype ") + c10::toString(dtype) + " (float32 or bfloat16 only)");
  if (Bm.scalar_type() != dtype || Cm.scalar_type() != dtype)
    return unsupported(why, "x, Bm and Cm must share one dtype");
  if (log_decay.scalar_type() != at::kFloat || (key_scale.defined() && key_scale.scalar_type() != at::kFloat))
    return unsupported(why, "log_decay and key_scale must be float32");
  if (x.dim() != 4 || Bm.dim() != 4 || Cm.sizes() != Bm.sizes())
    return unsupported(why, "x must be (B, T, H, P) and Bm, Cm one (B, T, G, N) shape; got x " + detail::shape_text(x) +
                                ", Bm " + detail::shape_text(Bm) + ", Cm " + detail::shape_text(Cm));
  const std::vector<int64_t> per_head = {x.size(0), x.size(1), x.size(2)};
  if (Bm.size(0) != x.size(0) || Bm.size(1) != x.size(1) || log_decay.sizes() != at::IntArrayRef(per_head) ||
      (key_scale.defined() && key_scale.sizes() != at::IntArrayRef(per_head)))
    return unsupported(why, "shapes x " + detail::shape_text(x) + ", Bm " + detail::shape_text(Bm) + ", log_decay " +
                                detail::shape_text(log_decay) + " do not match");
  const int64_t T = x.size(1), H = x.size(2), P = x.size(3), G = Bm.size(2), N = Bm.size(3);
  if (T < 1) return unsupported(why, "an empty sequence");
  if (G < 1 || H % G != 0)
    return unsupported(why, std::to_string(G) + " groups do not divide " + std::to_string(H) + " heads");
  if (P < 1 || P > 128 || N < 1 || N > 128)
    return unsupported(why, "head_dim P " + std::to_string(P) + ", d_state N " + std::to_string(N) + " (1 to 128)");
  if (x.size(0) * T * H * padded_width(P) > std::numeric_limits<int>::max())
    return unsupported(why, "more than 2^31 elements of x");
  // PyTorch's cached device properties: no CUDA call, so the check can run inside a graph capture.
  const size_t limit = at::cuda::getDeviceProperties(x.device().index())->sharedMemPerBlockOptin;
  const size_t need = detail::ssd_smem_bytes(shape_of(x, Bm), dtype_of(x));
  if (need > limit)
    return unsupported(
        why, "a chunk needs " + std::to_string(need) + " bytes of shared memory, a block has " + std::to_string(limit));
  return true;
}

at::Tensor ssd_forward(const at::Tensor& x_in, const at::Tensor& log_decay_in, const at::Tensor& key_scale_in,
                       const at::Tensor& Bm_in, const at::Tensor& Cm_in, bool float_output, at::Tensor* final_state) {
  std::string why;
  if (!ssd_supported(x_in, log_decay_in, key_scale_in, Bm_in, Cm_in, &why))
    throw std::invalid_argument(kWho + "unsupported inputs: " + why);
  const c10::cuda::CUDAGuard guard(x_in.device());
  detail::SsdForwardArgs a;
  a.shape = shape_of(x_in, Bm_in);
  a.dtype = dtype_of(x_in);
  a.float_output = float_output;
  const int64_t B = a.shape.batch, T = a.shape.seq, H = a.shape.heads, P = a.shape.head_dim, N = a.shape.d_state;
  const int64_t chunks = detail::ssd_chunks(a.shape.seq);
  const auto x = pad_last(x_in, P).contiguous();
  const auto Bm = pad_last(Bm_in, N).contiguous(), Cm = pad_last(Cm_in, N).contiguous();
  const auto log_decay = log_decay_in.contiguous();
  const auto key_scale = key_scale_in.defined() ? key_scale_in.contiguous() : at::Tensor();
  const auto floats = x.options().dtype(at::kFloat);
  auto y = at::empty({B, T, H, P}, float_output ? floats : x.options());
  auto states = at::empty({B, H, chunks, N, P}, floats);
  auto totals = at::empty({B, H, chunks}, floats);
  at::Tensor last;
  if (final_state != nullptr) last = at::empty({B, H, N, P}, floats);
  a.x = x.data_ptr();
  a.log_decay = log_decay.data_ptr<float>();
  a.key_scale = key_scale.defined() ? key_scale.data_ptr<float>() : nullptr;
  a.Bm = Bm.data_ptr();
  a.Cm = Cm.data_ptr();
  a.y = y.data_ptr();
  a.states = states.data_ptr<float>();
  a.totals = totals.data_ptr<float>();
  a.final_state = last.defined() ? last.data_ptr<float>() : nullptr;
  detail::check_cuda(kWho, detail::ssd_forward_launch(a, at::cuda::getCurrentCUDAStream()), "ssd_forward_launch");
  const int64_t P_in = x_in.size(3), N_in = Bm_in.size(3);
  if (final_state != nullptr) *final_state = last.narrow(2, 0, N_in).narrow(3, 0, P_in);
  return P == P_in ? y : y.narrow(3, 0, P_in);
}

}  // namespace bla::kernels
