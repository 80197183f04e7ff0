#include "bla/mixers/common/members.h"

#include <torch/torch.h>

#include <utility>
#include <vector>

namespace bla::mixers {

int64_t members_of(const torch::Tensor& param, int64_t solo_rank) {
  return param.dim() > solo_rank ? param.size(0) : 0;
}

torch::Tensor per_member(const torch::Tensor& param, int64_t solo_rank, const torch::Tensor& x) {
  const int64_t E = members_of(param, solo_rank);
  if (E == 0) return param;
  TORCH_CHECK(x.size(0) % E == 0, "per_member: ", x.size(0), " rows do not split into ", E, " members");
  const int64_t B = x.size(0) / E;
  std::vector<int64_t> expanded = {E, B};
  std::vector<int64_t> shape = {E * B};
  for (int64_t i = 0; i < x.dim() - 1 - solo_rank; ++i) shape.push_back(1);
  for (int64_t i = 1; i < param.dim(); ++i) {
    expanded.push_back(param.size(i));
    shape.push_back(param.size(i));
  }
  return param.unsqueeze(1).expand(expanded).reshape(shape);
}

torch::Tensor project(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& x) {
  if (weight.dim() == 2) return torch::nn::functional::linear(x, weight, bias);
  const int64_t E = weight.size(0), in = weight.size(2), out = weight.size(1);
  TORCH_CHECK(x.size(0) % E == 0, "project: ", x.size(0), " rows do not split into ", E, " members");
  auto y = torch::bmm(x.reshape({E, -1, in}), weight.transpose(1, 2));  // (E, rows, out)
  if (bias.defined()) y = y + bias.to(y.scalar_type()).unsqueeze(1);
  auto sizes = x.sizes().vec();
  sizes.back() = out;
  return y.reshape(sizes);
}

torch::Tensor project(const torch::nn::Linear& linear, const torch::Tensor& x) {
  return project(linear->weight, linear->bias, x);
}

namespace {

// The projections' weights side by side along `out` (one product's), each
// followed by zero rows up to a multiple of `multiple` outputs (constants: no
// parameter, no gradient), and each one's width so padded; with
// `join_biases`, their biases likewise (0 for a projection without one and
// for the padding; undefined where none has one). One torch::cat each.
struct Joined {
  torch::Tensor weight, bias;
  std::vector<int64_t> widths;
};
Joined joined(const std::vector<torch::nn::Linear>& linears, int64_t multiple, bool join_biases) {
  TORCH_CHECK(!linears.empty(), "project_stacked: no projections");
  const torch::Tensor w = linears[0]->weight;
  const int64_t out_dim = w.dim() - 2;  // 0 solo, 1 in an ensemble
  // The shape of `rows` outputs' weights ((rows, in) or (E, rows, in)) or, without `in`, their bias.
  auto shape = [&](int64_t rows, bool bias) {
    auto sizes = w.sizes().vec();
    sizes[static_cast<size_t>(out_dim)] = rows;
    if (bias) sizes.pop_back();
    return sizes;
  };
  bool any_bias = false;
  for (const auto& linear : linears) any_bias = any_bias || linear->bias.defined();
  any_bias = any_bias && join_biases;
  std::vector<torch::Tensor> weights, biases;
  std::vector<int64_t> widths;
  for (const auto& linear : linears) {
    const int64_t out = linear->weight.size(-2), pad = (multiple - out % multiple) % multiple;
    weights.push_back(linear->weight);
    if (pad > 0) weights.push_back(torch::zeros(shape(pad, false), w.options()));
    if (any_bias) {
      biases.push_back(linear->bias.defined() ? linear->bias : torch::zeros(shape(out, true), w.options()));
      if (pad > 0) biases.push_back(torch::zeros(shape(pad, true), w.options()));
    }
    widths.push_back(out + pad);
  }
  auto weight = weights.size() == 1 ? weights[0] : torch::cat(weights, out_dim);
  auto bias = !any_bias ? torch::Tensor() : biases.size() == 1 ? biases[0] : torch::cat(biases, out_dim);
  return {weight, bias, widths};
}

}  // namespace

std::vector<torch::Tensor> project_stacked(const std::vector<torch::nn::Linear>& linears, const torch::Tensor& x) {
  if (linears.size() == 1) return {project(linears[0], x)};
  const auto j = joined(linears, kStackedRowMultiple, /*join_biases=*/false);
  auto parts = project(j.weight, torch::Tensor(), x).split_with_sizes(j.widths, -1);
  for (size_t i = 0; i < linears.size(); ++i) {
    const auto& linear = linears[i];
    const int64_t out = linear->weight.size(-2);
    if (parts[i].size(-1) != out) parts[i] = parts[i].narrow(-1, 0, out);  // the padding's columns go
    // In the bias's dtype: under bf16 autocast a float32 bias is not rounded to bf16 (GatedFWA's gate biases
    // start at 2.3 to 6.9, where a bf16 step is 0.016 to 0.031).
    if (linear->bias.defined()) parts[i] = parts[i] + per_member(linear->bias, 1, parts[i]);
  }
  return parts;
}

torch::Tensor project_joined(const std::vector<torch::nn::Linear>& linears, const torch::Tensor& x) {
  const auto j = joined(linears, 1, /*join_biases=*/true);
  return project(j.weight, j.bias, x);
}

torch::Tensor embed(const torch::Tensor& weight, const torch::Tensor& tokens) {
  if (weight.dim() == 2) return torch::embedding(weight, tokens);
  const int64_t E = weight.size(0), V = weight.size(1);
  TORCH_CHECK(tokens.size(0) % E == 0, "embed: ", tokens.size(0), " sequences do not split into ", E, " members");
  const int64_t B = tokens.size(0) / E;
  std::vector<int64_t> shape(static_cast<size_t>(tokens.dim()), 1);
  shape[0] = E * B;
  // Member e's rows start at e * V. (No repeat_interleave: it reads a size on the host, which a CUDA graph forbids.)
  auto offsets = (torch::arange(E, tokens.options()) * V).view({E, 1}).expand({E, B}).reshape(shape);
  return torch::embedding(weight.reshape({E * V, weight.size(2)}), tokens + offsets);
}

torch::Tensor members_to_heads(const torch::Tensor& x, int64_t members) {
  auto sizes = x.sizes().vec();  // (E*B, T, H, rest...)
  const int64_t B = sizes[0] / members;
  std::vector<int64_t> split = {members, B};
  split.insert(split.end(), sizes.begin() + 1, sizes.end());
  std::vector<int64_t> order = {1, 2, 0};
  for (int64_t d = 3; d < static_cast<int64_t>(split.size()); ++d) order.push_back(d);
  std::vector<int64_t> merged = {B, sizes[1], members * sizes[2]};
  merged.insert(merged.end(), sizes.begin() + 3, sizes.end());
  return x.reshape(split).permute(order).reshape(merged);
}

torch::Tensor heads_to_members(const torch::Tensor& x, int64_t members) {
  auto sizes = x.sizes().vec();  // (B, T, E*H, rest...)
  const int64_t H = sizes[2] / members;
  std::vector<int64_t> split = {sizes[0], sizes[1], members, H};
  split.insert(split.end(), sizes.begin() + 3, sizes.end());
  std::vector<int64_t> order = {2, 0, 1};
  for (int64_t d = 3; d < static_cast<int64_t>(split.size()); ++d) order.push_back(d);
  std::vector<int64_t> merged = {members * sizes[0], sizes[1], H};
  merged.insert(merged.end(), sizes.begin() + 3, sizes.end());
  return x.reshape(split).permute(order).reshape(merged);
}

}  // namespace bla::mixers
