#include "bla/mixers/common/heads.h"

#include "bla/config/section.h"
#include "bla/ops/kernel_switch.h"

#ifdef BLA_HAVE_CUDA_KERNELS
#include "bla_kernels/model.h"
#endif

#include <torch/torch.h>

#include <string>
#include <tuple>

namespace bla::mixers {

const config::Key& heads_key() {
  static const config::Key key =
      config::computed_default(config::integer_key("heads", 0, 1, 1024, "heads of this mixer"), "model.heads");
  return key;
}

const config::Key& head_dim_key() {
  static const config::Key key = config::computed_default(
      config::integer_key("head_dim", 0, 1, 4096, "width of a query, key and value head"), "d_model / heads");
  return key;
}

std::vector<config::Key> rope_keys(bool rope_default) {
  return {config::boolean_key("rope", rope_default, "rotary position embedding on queries and keys (even head_dim)"),
          config::real_key("rope_base", 10000.0, 1.0, 1e12, "rotary embedding base")};
}

HeadLayout read_head_layout(config::Section& params, const MixerContext& ctx) {
  HeadLayout layout;
  layout.heads = params.integer(heads_key(), ctx.n_heads);
  const int64_t fallback_dim = ctx.d_model / layout.heads;
  layout.head_dim = params.integer(head_dim_key(), fallback_dim);
  if (!params.has("head_dim") && ctx.d_model % layout.heads != 0) {
    params.fail("heads", "d_model (" + std::to_string(ctx.d_model) + ") is not divisible by heads (" +
                             std::to_string(layout.heads) + "); set head_dim explicitly");
  }
  layout.value_dim = layout.head_dim;
  return layout;
}

torch::nn::Linear make_projection(int64_t in, int64_t out, double std) {
  torch::nn::Linear linear(torch::nn::LinearOptions(in, out).bias(false));
  torch::NoGradGuard no_grad;
  linear->weight.normal_(0.0, std);
  return linear;
}

torch::Tensor apply_rotary(const torch::Tensor& x, int64_t start, double base) {
  if (x.is_cuda()) {
#ifdef BLA_HAVE_CUDA_KERNELS
    std::string why = "turned off by BLA_KERNELS=0";
    if (ops::model_kernels_enabled() && kernels::rotary_supported(x, &why)) return kernels::rotary_autograd(x, start, base);
    ops::note_kernel_fallback("rotary", why);
#else
    ops::note_kernel_fallback("rotary", "bla-train was built without its CUDA kernels");
#endif
  }
  return apply_rotary_libtorch(x, start, base);
}

torch::Tensor apply_rotary_libtorch(const torch::Tensor& x, int64_t start, double base) {
  const int64_t T = x.size(1), D = x.size(3);
  TORCH_CHECK(D % 2 == 0, "rotary embedding needs an even head_dim, got ", D);
  auto options = x.options().dtype(x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat);
  auto inv_freq = torch::pow(base, -torch::arange(0, D, 2, options) / static_cast<double>(D));  // (D/2)
  auto positions = torch::arange(start, start + T, options);
  auto angles = torch::outer(positions, inv_freq);                      // (T, D/2)
  auto cos = torch::cat({angles.cos(), angles.cos()}, -1).view({1, T, 1, D}).to(x.scalar_type());
  auto sin = torch::cat({angles.sin(), angles.sin()}, -1).view({1, T, 1, D}).to(x.scalar_type());
  auto halves = x.chunk(2, -1);
  auto rotated = torch::cat({-halves[1], halves[0]}, -1);
  return x * cos + rotated * sin;
}

torch::Tensor stable_softmax(const torch::Tensor& x, int64_t dim) {
  if (x.scalar_type() == torch::kDouble || x.scalar_type() == torch::kFloat) return torch::softmax(x, dim);
  return torch::softmax(x, dim, torch::kFloat).to(x.scalar_type());
}

namespace {

// q, k, v of one product split into heads, with rotary embeddings on q and k
// where `rope` is set.
HeadProjections rotated_heads(const std::vector<torch::Tensor>& qkv, int64_t heads, bool rope, double rope_base,
                              int64_t start) {
  HeadProjections p{split_heads(qkv[0], heads), split_heads(qkv[1], heads), split_heads(qkv[2], heads)};
  if (rope) {
#ifdef BLA_HAVE_CUDA_KERNELS
    // Queries and keys in one launch where the kernel takes them; else each
    // through apply_rotary (which says why it falls back).
    if (p.q.is_cuda() && ops::model_kernels_enabled() && kernels::rotary_pair_supported(p.q, p.k)) {
      std::tie(p.q, p.k) = kernels::rotary_pair_autograd(p.q, p.k, start, rope_base);
      return p;
    }
#endif
    p.q = apply_rotary(p.q, start, rope_base);
    p.k = apply_rotary(p.k, start, rope_base);
  }
  return p;
}

}  // namespace

HeadProjections project_heads(const torch::Tensor& x, torch::nn::Linear q_proj, torch::nn::Linear k_proj,
                              torch::nn::Linear v_proj, int64_t heads, bool rope, double rope_base,
                              int64_t start) {
  return rotated_heads(project_stacked({q_proj, k_proj, v_proj}, x), heads, rope, rope_base, start);
}

std::pair<HeadProjections, torch::Tensor> project_heads_and(const torch::Tensor& x, torch::nn::Linear q_proj,
                                                            torch::nn::Linear k_proj, torch::nn::Linear v_proj,
                                                            torch::nn::Linear more, int64_t heads, bool rope,
                                                            double rope_base, int64_t start) {
  const auto parts = project_stacked({q_proj, k_proj, v_proj, more}, x);
  return {rotated_heads(parts, heads, rope, rope_base, start), parts[3]};
}

torch::Tensor split_heads(const torch::Tensor& x, int64_t heads) {
  auto sizes = x.sizes().vec();
  const int64_t last = sizes.back();
  sizes.back() = heads;
  sizes.push_back(last / heads);
  return x.reshape(sizes);
}

torch::Tensor merge_heads(const torch::Tensor& x) { return x.flatten(-2, -1); }

}  // namespace bla::mixers
