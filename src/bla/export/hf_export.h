// bla-export --format hf: a folder that Hugging Face transformers loads with
//   AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)
// config.json (model_type bla_lm, architectures, auto_map, the model
// description), model.safetensors (the weights as model.<C++ name>), the
// Python files that build the model (python/bla_train's modeling_bla.py,
// configuration_bla.py and what they import, embedded into bla-export at
// build time by cmake/BlaEmbedFiles.cmake), and for a text model its
// tokenizer (tokenizer_config.json; tokenization_bla.py for bytes, the
// SentencePiece model as tokenizer.model).
#pragma once

#include "bla/train/restore.h"
#include "bla/train/safetensors.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace bla::hf {

// A file of the export written as embedded (name in the folder, contents).
struct EmbeddedFile {
  const char* name;
  const char* text;
};

// The Python files bla-export carries (defined in the file the build generates).
const std::vector<EmbeddedFile>& python_files();

// The weights under the Hugging Face model's names: "model." + the C++ module name.
std::map<std::string, at::Tensor> hf_weight_names(const std::map<std::string, at::Tensor>& tensors);

// config.json of the export, from bla-export's description of the architecture
// (train::describe_architecture). `dtype` names the weights' torch dtype
// ("float32", "float16", "bfloat16").
nlohmann::json hf_config(const nlohmann::json& architecture, const train::RestoredRun& run, const std::string& dtype);

// Writes the whole folder; returns the files written (names in `out`).
std::vector<std::string> write_hf_export(const train::RestoredRun& run, const train::SafetensorsContents& weights,
                                         const nlohmann::json& architecture, const std::string& dtype,
                                         const std::string& out);

// The model's float32 logits (1, T, vocab) for `tokens` on the CPU: what a
// loader of the export must reproduce (bla-export --reference-tokens writes them).
at::Tensor reference_logits(train::RestoredRun& run, const std::vector<int64_t>& tokens);

}  // namespace bla::hf
