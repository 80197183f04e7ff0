// bla-generate CHECKPOINT --prompt TEXT|"ID ID ..." --max-new-tokens N
//              [--temperature T] [--top-k K] [--seed S] [--set key.path=value ...]
// Decodes with each mixer's recurrent state (attention its KV cache, SWA its
// window, BLA its slots): the prompt is fed token by token, then new tokens
// are printed to stdout as they are chosen. For a checkpoint of data.task:
// text the prompt is text, tokenised as its folder was (index.json) after an
// end-of-document id (so the model starts a new document), and the new
// tokens are printed as text; for other tasks it is a list of token ids. A
// summary with the decode state's size in bytes goes to stderr.
#include "bla/config/config.h"
#include "bla/tasks/text.h"
#include "bla/train/checkpoint.h"
#include "bla/train/decode.h"
#include "bla/train/restore.h"

#include "cli/arguments.h"
#include "cli/library_errors.h"

#include <torch/torch.h>

#include <cstdio>
#include <limits>
#include <iostream>

int main(int argc, char** argv) {
  const std::string program = "bla-generate";
  CLI::App app{"bla-generate: sample tokens from a checkpoint with recurrent decoding. Runs on the device of the "
               "stored config (run.device); --set run.device=cpu needs no GPU."};
  std::string checkpoint, prompt;
  std::vector<std::string> overrides;
  int64_t max_new_tokens = 0;
  bla::train::SamplingOptions sampling;
  app.add_option("checkpoint", checkpoint, "a checkpoint file written by bla-train")->required();
  app.add_option("--prompt", prompt, "text for a data.task: text checkpoint, else white-space separated token ids, e.g. \"3 17 5\"")
      ->required();
  app.add_option("--max-new-tokens", max_new_tokens, "tokens to generate")->required()->check(bla::cli::IntegerIn(0, 1 << 24));
  app.add_option("--temperature", sampling.temperature, "softmax temperature; 0 picks the most likely token (default 1)")
      ->check(bla::cli::RealIn(0, 1e6));
  app.add_option("--top-k", sampling.top_k, "sample among the k most likely tokens; 0: all (default)")
      ->check(bla::cli::IntegerIn(0, 1 << 24));
  app.add_option("--seed", sampling.seed, "seed of the sampler (default 0)")
      ->check(bla::cli::IntegerIn(0, std::numeric_limits<int64_t>::max()));
  app.add_option("--set", overrides, "override a value of the stored config, e.g. --set run.device=cpu (repeatable)");
  app.footer("Exit codes: 0 done, 1 other error, 2 config or argument error, 3 checkpoint error.");
  if (int status = bla::cli::parse_arguments(app, program, argc, argv); status >= 0) return status;
  return bla::util::run_guarded(program, bla::cli::library_errors(), [&] {
    try {
      sampling.validate();
    } catch (const std::invalid_argument& e) {
      throw bla::util::ArgumentError(e.what());
    }
    bla::train::RestoreOptions restore;
    restore.overrides = overrides;
    restore.data_optional = true;  // a text checkpoint carries its tokenizer
    auto run = bla::train::restore_checkpoint(checkpoint, restore);
    if (!run.data_missing.empty()) {
      std::cerr << "bla-generate: the training data is not here (" << run.data_missing
                << "); using the tokenizer the checkpoint stores\n";
    }
    // Ids without a tokenizer (imported token files) are read and printed as ids.
    const bla::data::Tokenizer* tokenizer = run.tokenizer && run.tokenizer->kind() != "ids" ? run.tokenizer.get() : nullptr;
    std::vector<int64_t> tokens;
    if (tokenizer) {
      tokens.push_back(tokenizer->end_of_document());
      for (int64_t id : tokenizer->encode(prompt)) tokens.push_back(id);
    } else {
      try {
        tokens = bla::train::parse_token_ids(prompt, run.vocab_size);
      } catch (const std::invalid_argument& e) {
        throw bla::util::ArgumentError(e.what());
      }
    }
    std::cerr << "bla-generate: " << checkpoint << " (step " << run.meta.value("step", int64_t{0}) << ", task "
              << (run.task ? run.task->name() : run.config.root["data"]["task"].Scalar()) << ", vocab " << run.vocab_size << ") on " << run.device.str() << "\n";
    for (int64_t layer = 0; layer < run.model->num_layers(); ++layer) {
      std::cerr << "  layer " << layer << ": " << run.model->mixer(layer).describe() << "\n";
    }
    bool first = true;
    std::vector<int64_t> generated;
    std::string printed;  // text: the decoded new tokens printed so far
    if (tokenizer) std::cout << prompt << std::flush;
    auto result = bla::train::decode(*run.model, tokens, max_new_tokens, sampling, run.device, [&](int64_t token) {
      if (tokenizer) {  // print what the new token adds to the decoded text
        generated.push_back(token);
        std::string text = tokenizer->decode(generated);
        if (text.compare(0, printed.size(), printed) == 0) {
          std::cout << text.substr(printed.size()) << std::flush;
          printed = std::move(text);
        }
        return;
      }
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
  });
}
