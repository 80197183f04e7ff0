#include "bla/export/hf_export.h"

#include "bla/util/base64.h"
#include "bla/util/files.h"

#include <torch/torch.h>

namespace bla::hf {
namespace {

const char* kModelType = "bla_lm";
const char* kEndOfDocument = "<|end_of_document|>";  // tokenization_bla.py's name of byte id 256

// The keys of the model description that bla_train.model.LanguageModel reads.
nlohmann::json model_description(const nlohmann::json& architecture) {
  nlohmann::json out;
  for (const char* key : {"vocab_size", "d_model", "layers", "heads", "mlp", "mlp_ratio", "short_conv", "norm_eps",
                          "tie_embeddings", "layer_mixers"}) {
    out[key] = architecture.at(key);
  }
  return out;
}

std::string tokenizer_kind(const train::RestoredRun& run) { return run.tokenizer ? run.tokenizer->kind() : ""; }

// The SentencePiece model's bytes: from the checkpoint's tokenizer record
// (data/tokenizer_record.h; the file it was loaded from is gone by now), else
// (older checkpoints) the data folder's model file.
std::string sentencepiece_model(const train::RestoredRun& run) {
  if (run.meta.contains("tokenizer") && run.meta.at("tokenizer").contains("model_base64")) {
    return util::base64_decode(run.meta.at("tokenizer").at("model_base64").get<std::string>());
  }
  return util::read_file(run.tokenizer->model_path());
}

}  // namespace

std::map<std::string, at::Tensor> hf_weight_names(const std::map<std::string, at::Tensor>& tensors) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, tensor] : tensors) out["model." + name] = tensor;
  return out;
}

nlohmann::json hf_config(const nlohmann::json& architecture, const train::RestoredRun& run, const std::string& dtype) {
  nlohmann::json config = model_description(architecture);
  config["model_type"] = kModelType;
  config["architectures"] = {"BlaForCausalLM"};
  config["auto_map"] = {{"AutoConfig", "configuration_bla.BlaConfig"},
                        {"AutoModelForCausalLM", "modeling_bla.BlaForCausalLM"}};
  config["torch_dtype"] = dtype;
  config["hidden_size"] = config["d_model"];
  config["num_hidden_layers"] = config["layers"];
  config["num_attention_heads"] = config["heads"];
  config["tie_word_embeddings"] = false;  // a tied head is the embedding's matrix inside the model
  config["max_seq_len"] = architecture.at("max_seq_len");  // the training sequence length (not a limit)
  if (run.tokenizer) {  // also for token ids from elsewhere (llm.c files): generate stops at their end mark
    config["eos_token_id"] = run.tokenizer->end_of_document();
    config["pad_token_id"] = run.tokenizer->end_of_document();
  }
  // Where it came from, for people; the model reads none of it.
  config["bla_train"] = {{"format", architecture.at("format")},
                         {"architecture", architecture.at("architecture")},
                         {"source_checkpoint", architecture.value("source_checkpoint", "")},
                         {"step", architecture.at("step")},
                         {"parameters", architecture.at("parameters")},
                         {"task", architecture.at("task")},
                         {"tokenizer", tokenizer_kind(run)}};
  return config;
}

at::Tensor reference_logits(train::RestoredRun& run, const std::vector<int64_t>& tokens) {
  torch::NoGradGuard no_grad;
  auto input = torch::tensor(tokens, torch::kLong).unsqueeze(0).to(run.device);
  return run.model->forward(input).to(torch::kCPU, torch::kFloat).contiguous();
}

std::vector<std::string> write_hf_export(const train::RestoredRun& run, const train::SafetensorsContents& weights,
                                         const nlohmann::json& architecture, const std::string& dtype,
                                         const std::string& out) {
  std::vector<std::string> written;
  auto write = [&](const std::string& name, const std::string& bytes) {
    util::write_file_atomically(util::join_path(out, name), bytes);
    written.push_back(name);
  };
  util::create_directories(out);

  train::SafetensorsContents contents;
  contents.tensors = hf_weight_names(weights.tensors);
  contents.metadata = weights.metadata;
  contents.metadata["format"] = "pt";  // transformers' safetensors loader asks for it
  train::save_safetensors(util::join_path(out, "model.safetensors"), contents);
  written.push_back("model.safetensors");

  auto config = hf_config(architecture, run, dtype);
  for (const auto& file : python_files()) write(file.name, file.text);

  const std::string kind = tokenizer_kind(run);
  if (kind == "byte") {
    nlohmann::json tokenizer = {{"tokenizer_class", "BlaByteTokenizer"},
                                {"auto_map", {{"AutoTokenizer", {"tokenization_bla.BlaByteTokenizer", nullptr}}}},
                                {"eos_token", kEndOfDocument},
                                {"pad_token", kEndOfDocument},
                                {"padding_side", "right"}};  // no model_max_length: the model is not bound to the training length
    write("tokenizer_config.json", tokenizer.dump(2) + "\n");
    config["auto_map"]["AutoTokenizer"] = {"tokenization_bla.BlaByteTokenizer", nullptr};
  } else if (kind == "sentencepiece") {
    // The model file as trained; transformers reads it through LlamaTokenizer (no BOS or EOS added, as bla-train).
    write("tokenizer.model", sentencepiece_model(run));
    nlohmann::json tokenizer = {{"tokenizer_class", "LlamaTokenizer"},
                                {"add_bos_token", false},
                                {"add_eos_token", false},
                                {"padding_side", "right"}};
    write("tokenizer_config.json", tokenizer.dump(2) + "\n");
  }
  write("config.json", config.dump(2) + "\n");
  return written;
}

}  // namespace bla::hf
