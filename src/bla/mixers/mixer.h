// The interface every sequence mixer implements, and the registry that builds
// mixers from config. Adding a mixer touches one folder: src/bla/mixers/<name>/
// with the layer, and a BLA_REGISTER_MIXER line in its .cpp.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bla::config {
class Section;
class Schema;
}

namespace bla::mixers {

// What a mixer keeps per sequence to decode the next token: named tensors
// with a leading batch dimension, and the number of tokens seen so far.
struct MixerState {
  std::map<std::string, torch::Tensor> tensors;
  int64_t position = 0;
  // Bytes held by the tensors (all sequences of the batch).
  int64_t bytes() const;
};

class MixerImpl : public torch::nn::Module {
 public:
  // Full-sequence causal forward for training: x (B, T, d_model) -> (B, T, d_model).
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  // An empty decoding state for `batch` sequences.
  virtual MixerState initial_state(int64_t batch, const torch::TensorOptions& options) const = 0;
  // One decoding step: x (B, d_model) -> (B, d_model); updates `state`.
  virtual torch::Tensor step(const torch::Tensor& x, MixerState& state) = 0;
  // Numbers a layer keeps per sequence (batch 1) to decode after `context`
  // tokens, by the convention of docs/mixers.md, "State size".
  virtual int64_t state_numel(int64_t context) const = 0;
  // One line for logs, e.g. "bla(window=64, slots=8, heads=4)".
  virtual std::string describe() const = 0;
  // Whether forward reads x in one product alone (one projection for all it
  // needs), so that under bf16 autocast the block may hand it x's norm in bf16
  // (common/norm.h, rms_norm_into_products): the values that product's cast
  // would make. Several products would sum their gradients in bf16: false.
  virtual bool reads_input_in_one_product() const { return false; }
};

// What a mixer factory knows about its place in the model.
struct MixerContext {
  int64_t d_model = 0;
  int64_t n_heads = 0;  // model.heads, the default head count
  int64_t layer = 0;    // index of the layer (0-based)
  int64_t max_seq_len = 0;
  double norm_eps = 1e-5;  // model.norm_eps, for the layers' own RMSNorms (mixers/common/norm.h)
};

using MixerFactory = std::function<std::shared_ptr<MixerImpl>(config::Section& params, const MixerContext& ctx)>;

struct MixerInfo {
  std::string name;
  std::string summary;        // one line for --help and the README table
  std::string state_formula;  // e.g. "2*N*d_model"
  const config::Schema& (*keys)();  // the declared keys of model.mixers.<name> (config/schema.h)
  MixerFactory make;
};

class MixerRegistry {
 public:
  static MixerRegistry& instance();
  void add(MixerInfo info);
  // Throws config::ConfigError naming the unknown type and the known ones.
  const MixerInfo& get(const std::string& name, const config::Section& where, const std::string& key) const;
  const MixerInfo* find(const std::string& name) const;
  std::vector<std::string> names() const;
  // Every mixer's declared keys, by name.
  std::vector<const config::Schema*> schemas() const;

 private:
  std::map<std::string, MixerInfo> mixers_;
};

struct MixerRegistration {
  explicit MixerRegistration(MixerInfo info) { MixerRegistry::instance().add(std::move(info)); }
};

}  // namespace bla::mixers

#define BLA_MIXER_CONCAT_INNER(a, b) a##b
#define BLA_MIXER_CONCAT(a, b) BLA_MIXER_CONCAT_INNER(a, b)
// BLA_REGISTER_MIXER({"bla", "Blurry window attention", "2*N*d_model", &bla_schema, &make_bla});
#define BLA_REGISTER_MIXER(...) \
  static ::bla::mixers::MixerRegistration BLA_MIXER_CONCAT(bla_mixer_registration_, __LINE__)(::bla::mixers::MixerInfo __VA_ARGS__)
