// bla-export CHECKPOINT --out DIR [--dtype keep|f32|f16|bf16] [--set key.path=value ...]
// Writes DIR/model.safetensors (the weights, by their module names, e.g.
// blocks.0.mixer.q_proj.weight) and DIR/config.json (the architecture: model
// section, vocabulary, the mixer of each layer, the task). Reading them needs
// no bla-train: any safetensors reader and a JSON parser will do.
#include "bla/config/config.h"
#include "bla/train/checkpoint.h"
#include "bla/train/restore.h"
#include "bla/train/safetensors.h"
#include "bla/util/files.h"

#include "cli/arguments.h"
#include "cli/library_errors.h"

#include <torch/torch.h>

#include <iostream>

int main(int argc, char** argv) {
  const std::string program = "bla-export";
  CLI::App app{"bla-export: a checkpoint's weights to safetensors, with a JSON description of the architecture. "
               "Runs on the CPU (needs no GPU)."};
  std::string checkpoint, out, dtype = "keep";
  std::vector<std::string> overrides;
  app.add_option("checkpoint", checkpoint, "a checkpoint file written by bla-train")->required();
  app.add_option("--out", out, "the folder to write model.safetensors and config.json into")->required();
  app.add_option("--dtype", dtype, "floating-point weights as stored (keep) or converted")
      ->check(CLI::IsMember({"keep", "f32", "f16", "bf16"}));
  app.add_option("--set", overrides, "override a value of the stored config (repeatable)");
  app.footer("Exit codes: 0 done, 1 other error, 2 config or argument error, 3 checkpoint error.");
  if (int status = bla::cli::parse_arguments(app, program, argc, argv); status >= 0) return status;
  return bla::util::run_guarded(program, bla::cli::library_errors(), [&] {
    bla::train::RestoreOptions restore;
    restore.overrides = overrides;
    restore.overrides.push_back("run.device=cpu");  // the weights are written from host memory
    auto run = bla::train::restore_checkpoint(checkpoint, restore);
    bla::train::SafetensorsContents contents;
    contents.tensors = bla::train::module_tensors(*run.model);
    if (dtype != "keep") {
      const auto type = dtype == "f32" ? torch::kFloat : dtype == "f16" ? torch::kHalf : torch::kBFloat16;
      for (auto& [name, tensor] : contents.tensors) {
        if (tensor.is_floating_point()) tensor = tensor.to(type);
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
    bla::train::save_safetensors(weights, contents);
    bla::util::write_file_atomically(config, architecture.dump(2) + "\n");
    int64_t bytes = 0;
    for (const auto& [name, tensor] : contents.tensors) bytes += tensor.numel() * static_cast<int64_t>(tensor.element_size());
    std::cout << "bla-export: " << contents.tensors.size() << " tensors (" << run.model->num_parameters() << " parameters, "
              << bytes << " bytes) -> " << weights << "\n"
              << "bla-export: architecture -> " << config << "\n";
    return 0;
  });
}
