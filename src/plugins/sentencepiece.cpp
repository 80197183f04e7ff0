// The SentencePiece plugin: libbla_sentencepiece.so, the only code that
// links libsentencepiece. bla/data/sentencepiece_plugin.h says why it is a
// plugin; bla/data/sentencepiece.cpp loads it.
#include "bla/data/sentencepiece_plugin.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <sys/stat.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <unordered_map>

namespace bla::data {
namespace {

class SentencepieceTokenizer : public Tokenizer {
 public:
  SentencepieceTokenizer(const std::string& path, const std::string& key) : path_(path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0 || S_ISDIR(info.st_mode)) {
      throw std::runtime_error(key + " " + path + ": no such file (give a SentencePiece .model file, or byte)");
    }
    const auto status = processor_.Load(path);
    if (!status.ok()) {
      throw std::runtime_error(key + " " + path + ": not a SentencePiece model (" + status.ToString() + ")");
    }
    pieces_ = processor_.GetPieceSize();
    // A model without </s> gets one more id for the end of a document.
    end_of_document_ = processor_.eos_id() >= 0 ? processor_.eos_id() : pieces_;
  }
  std::string kind() const override { return "sentencepiece"; }
  std::string model_path() const override { return path_; }
  int64_t vocab_size() const override { return std::max<int64_t>(pieces_, end_of_document_ + 1); }
  int64_t end_of_document() const override { return end_of_document_; }

  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int> ids;
    const auto status = processor_.Encode(text, &ids);
    if (!status.ok()) throw std::runtime_error("SentencePiece " + path_ + ": cannot encode text: " + status.ToString());
    return {ids.begin(), ids.end()};
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::vector<int> kept;
    for (int64_t id : ids) {
      if (id >= 0 && id < pieces_ && id != end_of_document_) kept.push_back(static_cast<int>(id));
    }
    std::string text;
    const auto status = processor_.Decode(kept, &text);
    if (!status.ok()) throw std::runtime_error("SentencePiece " + path_ + ": cannot decode ids: " + status.ToString());
    return text;
  }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor processor_;
  int64_t pieces_ = 0;
  int64_t end_of_document_ = 0;
};

}  // namespace
}  // namespace bla::data

extern "C" __attribute__((visibility("default"))) bla::data::Tokenizer* bla_sentencepiece_load(
    const std::string& path, const std::string& key, std::string* error) {
  try {
    return new bla::data::SentencepieceTokenizer(path, key);
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}

extern "C" __attribute__((visibility("default"))) bool bla_sentencepiece_train(
    const bla::data::SentencepieceTraining& options, std::string* error) {
  try {
    std::string inputs;
    for (const auto& input : options.inputs) inputs += (inputs.empty() ? "" : ",") + input;
    const std::unordered_map<std::string, std::string> arguments{
        {"input", inputs},
        {"model_prefix", options.model_prefix},
        {"vocab_size", std::to_string(options.vocab_size)},
        {"model_type", options.model_type},
        {"character_coverage", "1.0"},
        {"normalization_rule_name", "identity"},  // keep the text as it is: decoding gives it back
        {"remove_extra_whitespaces", "false"},
        {"minloglevel", "1"},  // warnings and errors only
    };
    const auto status = sentencepiece::SentencePieceTrainer::Train(arguments);
    if (!status.ok()) {
      *error = "SentencePiece training (" + options.model_prefix + ".model) failed: " + status.ToString();
      return false;
    }
    return true;
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
}
