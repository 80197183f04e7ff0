// Building one mixer layer the way the registry does from a config, for the
// layer tests: `model.mixers.<type>: <params>` in a one-layer model of
// d_model 32. The parameters sit on line 6 of the generated text, so config
// errors read "<file>, line 6: model.mixers.<type>.<key>: ...".
#pragma once

#include "bla/config/config.h"
#include "bla/mixers/mixer.h"

#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <string>

namespace bla::testing {

// `context_d_model` is what the factory is told d_model is (to test layouts
// that do not divide); the config itself always says 32. `norm_eps` is what
// the factory is told model.norm_eps is.
inline std::shared_ptr<mixers::MixerImpl> build_mixer(const std::string& type, const std::string& params,
                                                      const std::string& file, int64_t context_d_model = 32,
                                                      double norm_eps = 1e-5) {
  auto config = config::parse_config("data: {task: mqar}\nmodel:\n  d_model: 32\n  layers: 1\n  mixer: " + type +
                                         "\n  mixers: {" + type + ": " + params + "}\ntrain: {steps: 1}\n",
                                     file);
  mixers::MixerContext ctx{context_d_model, 2, 0, 64, norm_eps};
  auto& spec = config.model.mixers.at(0);
  auto mixer = mixers::MixerRegistry::instance().get(spec.type, *spec.params, "type").make(*spec.params, ctx);
  spec.params->finish();
  return mixer;
}

// The message build_mixer throws, or "no error".
inline std::string mixer_build_error(const std::string& type, const std::string& params, const std::string& file,
                                     int64_t context_d_model = 32) {
  try {
    build_mixer(type, params, file, context_d_model);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

// Largest difference between token-by-token decoding and the full forward.
inline double decode_error(mixers::MixerImpl& layer, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  auto full = layer.forward(x);
  auto state = layer.initial_state(x.size(0), x.options());
  double worst = 0.0;
  for (int64_t t = 0; t < x.size(1); ++t) {
    worst = std::max(worst, (layer.step(x.select(1, t), state) - full.select(1, t)).abs().max().item<double>());
  }
  return worst;
}

}  // namespace bla::testing
