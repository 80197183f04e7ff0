// bla-export CHECKPOINT --out DIR [--format bla|hf] [--dtype keep|f32|f16|bf16]
//            [--reference-tokens "IDS"] [--set key.path=value ...]
// --format bla (the default) writes DIR/model.safetensors (the weights, by
// their module names, e.g. blocks.0.mixer.q_proj.weight) and DIR/config.json
// (the architecture: model section, vocabulary, the mixer of each layer, the
// task). Reading them needs no bla-train: any safetensors reader and a JSON
// parser will do. --format hf writes a Hugging Face model folder instead
// (bla/export/hf_export.h). --reference-tokens adds
// DIR/reference_logits.safetensors: the token ids and this model's float32
// logits for them, for a loader to check it reproduces the model.
#include "bla/config/config.h"
#include "bla/export/hf_export.h"
#include "bla/train/checkpoint.h"
#include "bla/train/decode.h"
#include "bla/train/restore.h"
#include "bla/train/safetensors.h"
#include "bla/util/files.h"

#include "cli/arguments.h"
#include "cli/library_errors.h"

#include <torch/torch.h>

#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  const std::string program = "bla-export";
  CLI::App app{"bla-export: a checkpoint's weights to safetensors, with a JSON description of the architecture, or (--format hf) "
               "a Hugging Face model folder. "
               "Runs on the CPU (needs no GPU)."};
  std::string checkpoint, out, dtype = "keep", format = "bla", reference_tokens;
  std::vector<std::string> overrides;
  app.add_option("checkpoint", checkpoint, "a checkpoint file written by bla-train")->required();
  app.add_option("--out", out, "the folder to write model.safetensors and config.json into")->required();
  app.add_option("--format", format,
                 "bla: model.safetensors and config.json by bla-train's names (default); hf: a folder that "
                 "transformers.AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True) loads")
      ->check(CLI::IsMember({"bla", "hf"}));
  app.add_option("--reference-tokens", reference_tokens,
                 "token ids, e.g. \"3 5 18\": also write reference_logits.safetensors (tokens, and the model's "
                 "float32 logits for them) to check a loader against");
  app.add_option("--dtype", dtype, "floating-point weights as stored (keep) or converted")
      ->check(CLI::IsMember({"keep", "f32", "f16", "bf16"}));
  app.add_option("--set", overrides, "override a value of the stored config (repeatable)");
  app.footer("Exit codes: 0 done, 1 other error, 2 config or argument error, 3 checkpoint error.");
  if (int status = bla::cli::parse_arguments(app, program, argc, argv); status >= 0) return status;
  return bla::util::run_guarded(program, bla::cli::library_errors(), [&] {
    bla::train::RestoreOptions restore;
    restore.overrides = overrides;
    restore.overrides.push_back("run.device=cpu");  // the weights are written from host memory
    restore.data_optional = true;                     // a text checkpoint carries its tokenizer
    auto run = bla::train::restore_checkpoint(checkpoint, restore);
    bla::train::SafetensorsContents contents;
    contents.tensors = bla::train::module_tensors(*run.model);
    if (dtype != "keep") {
      const auto type = dtype == "f32" ? torch::kFloat : dtype == "f16" ? torch::kHalf : torch::kBFloat16;
      for (auto& [name, tensor] : contents.tensors) {
        if (tensor.is_floating_point()) tensor = tensor.to(type);
      }
    }
    std::vector<int64_t> reference_ids;
    if (!reference_tokens.empty()) {
      try {
        reference_ids = bla::train::parse_token_ids(reference_tokens, run.vocab_size);
      } catch (const std::invalid_argument& error) {  // its messages name --prompt, bla-generate's option
        std::string message = error.what();
        if (message.rfind("--prompt", 0) == 0) message = "--reference-tokens" + message.substr(8);
        throw std::invalid_argument(message);
      }
    }
    auto architecture = bla::train::describe_architecture(run);
    architecture["source_checkpoint"] = checkpoint;
    architecture["weights"] = "model.safetensors";
    architecture["dtype"] = dtype;
    contents.metadata = {{"format", "pt"},
                         {"producer", "bla-train"},
                         {"source_checkpoint", checkpoint},
                         {"step", std::to_string(run.meta.value("step", int64_t{0}))},
                         {"architecture", architecture.dump()}};
    bla::util::create_directories(out);
    const auto weights = bla::util::join_path(out, "model.safetensors");
    const auto config = bla::util::join_path(out, "config.json");
    int64_t bytes = 0;
    for (const auto& [name, tensor] : contents.tensors) bytes += tensor.numel() * static_cast<int64_t>(tensor.element_size());
    if (format == "hf") {
      std::string torch_dtype = "float32";
      for (const auto& [name, tensor] : contents.tensors) {
        if (tensor.scalar_type() == torch::kHalf) torch_dtype = "float16";
        if (tensor.scalar_type() == torch::kBFloat16) torch_dtype = "bfloat16";
      }
      const auto files = bla::hf::write_hf_export(run, contents, architecture, torch_dtype, out);
      std::cout << "bla-export: " << contents.tensors.size() << " tensors (" << run.model->num_parameters()
                << " parameters, " << bytes << " bytes) -> " << weights << " (names model.*)\n"
                << "bla-export: Hugging Face model folder " << out << ":";
      for (const auto& file : files) std::cout << " " << file;
      std::cout << "\n";
    } else {
      bla::train::save_safetensors(weights, contents);
      bla::util::write_file_atomically(config, architecture.dump(2) + "\n");
      std::cout << "bla-export: " << contents.tensors.size() << " tensors (" << run.model->num_parameters()
                << " parameters, " << bytes << " bytes) -> " << weights << "\n"
                << "bla-export: architecture -> " << config << "\n";
    }
    if (!reference_ids.empty()) {
      bla::train::SafetensorsContents reference;
      reference.tensors["tokens"] = torch::tensor(reference_ids, torch::kLong).unsqueeze(0);
      reference.tensors["logits"] = bla::hf::reference_logits(run, reference_ids);
      reference.metadata = {{"format", "pt"}, {"producer", "bla-export --reference-tokens"}};
      const auto path = bla::util::join_path(out, "reference_logits.safetensors");
      bla::train::save_safetensors(path, reference);
      std::cout << "bla-export: logits of " << reference_ids.size() << " reference tokens -> " << path << "\n";
    }
    return 0;
  });
}
