// bla-generate CHECKPOINT --prompt "ID ID ..." --max-new-tokens N
//              [--temperature T] [--top-k K] [--seed S] [--set key.path=value ...]
// Decodes with each mixer's recurrent state (attention its KV cache, SWA its
// window, BLA its slots): the prompt is fed token by token, then new tokens
// are printed to stdout as they are chosen. The prompt is a list of token
// ids (byte-level text tokenisation is not built yet). A summary with the
// decode state's size in bytes goes to stderr.
#include "bla/config/config.h"
#include "bla/train/checkpoint.h"
#include "bla/train/restore.h"

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"bla-generate: sample tokens from a checkpoint with recurrent decoding"};
  std::string checkpoint, prompt;
  std::vector<std::string> overrides;
  int64_t max_new_tokens = 0;
  bla::train::SamplingOptions sampling;
  app.add_option("checkpoint", checkpoint, "a checkpoint file written by bla-train")->required();
  app.add_option("--prompt", prompt, "white-space separated token ids, e.g. \"3 17 5\" (text tokenisation is not built yet)")
      ->required();
  app.add_option("--max-new-tokens", max_new_tokens, "tokens to generate")->required()->check(CLI::NonNegativeNumber);
  app.add_option("--temperature", sampling.temperature, "softmax temperature; 0 picks the most likely token (default 1)");
  app.add_option("--top-k", sampling.top_k, "sample among the k most likely tokens; 0: all (default)");
  app.add_option("--seed", sampling.seed, "seed of the sampler (default 0)");
  app.add_option("--set", overrides, "override a value of the stored config, e.g. --set run.device=cpu (repeatable)");
  CLI11_PARSE(app, argc, argv);
  try {
    sampling.validate();
    bla::train::RestoreOptions restore;
    restore.overrides = overrides;
    auto run = bla::train::restore_checkpoint(checkpoint, restore);
    const auto tokens = bla::train::parse_token_ids(prompt, run.vocab_size);
    std::cerr << "bla-generate: " << checkpoint << " (step " << run.meta.value("step", int64_t{0}) << ", task "
              << run.task->name() << ", vocab " << run.vocab_size << ") on " << run.device.str() << "\n";
    for (int64_t layer = 0; layer < run.model->num_layers(); ++layer) {
      std::cerr << "  layer " << layer << ": " << run.model->mixer(layer).describe() << "\n";
    }
    bool first = true;
    auto result = bla::train::decode(*run.model, tokens, max_new_tokens, sampling, run.device, [&](int64_t token) {
      std::cout << (first ? "" : " ") << token << std::flush;
      first = false;
    });
    std::cout << std::endl;
    const int64_t seen = static_cast<int64_t>(tokens.size() + result.tokens.size());
    std::cerr << "bla-generate: prompt " << tokens.size() << " tokens (" << result.prefill_seconds << " s), "
              << result.tokens.size() << " new tokens (" << result.decode_seconds << " s)\n";
    std::cerr << "decode state after " << seen << " tokens: " << result.state_bytes << " bytes";
    for (size_t layer = 0; layer < result.layer_bytes.size(); ++layer) {
      std::cerr << (layer == 0 ? " (" : ", ") << "layer " << layer << ": " << result.layer_bytes[layer];
    }
    std::cerr << (result.layer_bytes.empty() ? "" : ")") << "\n";
    return 0;
  } catch (const bla::config::ConfigError& e) {
    std::cerr << "bla-generate: config error: " << e.what() << "\n";
    return 2;
  } catch (const bla::train::CheckpointError& e) {
    std::cerr << "bla-generate: " << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "bla-generate: error: " << e.what() << "\n";
    return 1;
  }
}
