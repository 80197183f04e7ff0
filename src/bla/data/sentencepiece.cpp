// Loads the SentencePiece plugin (bla/data/sentencepiece_plugin.h says why
// SentencePiece is a plugin). src/CMakeLists.txt defines
// BLA_HAVE_SENTENCEPIECE for this file alone when the plugin is built, so a
// build without libsentencepiece still links and says how to get it.
#include "bla/data/sentencepiece_plugin.h"
#include "bla/data/tokenizer.h"

#include "bla/util/files.h"

#include <dlfcn.h>

#include <stdexcept>

namespace bla::data {

#ifdef BLA_HAVE_SENTENCEPIECE

namespace {

struct Plugin {
  SentencepieceLoadFunction load = nullptr;
  SentencepieceTrainFunction train = nullptr;
  std::string error;  // why it could not be loaded
};

// The plugin beside this library (build/src, or the install's lib folder),
// loaded once and never unloaded (its tokenizers' code lives there).
const Plugin& plugin() {
  static const Plugin loaded = [] {
    Plugin p;
    Dl_info self{};
    const std::string dir = ::dladdr(reinterpret_cast<void*>(&sentencepiece_available), &self) != 0 && self.dli_fname
                                ? util::parent_path(self.dli_fname)
                                : ".";
    const std::string path = util::join_path(dir, kSentencepiecePluginFile);
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      p.error = "cannot load the SentencePiece plugin " + path + " (" + ::dlerror() + "); rebuild (scripts/build.sh)";
      return p;
    }
    p.load = reinterpret_cast<SentencepieceLoadFunction>(::dlsym(handle, kSentencepieceLoadSymbol));
    p.train = reinterpret_cast<SentencepieceTrainFunction>(::dlsym(handle, kSentencepieceTrainSymbol));
    if (p.load == nullptr || p.train == nullptr) p.error = path + " is not bla-train's SentencePiece plugin; rebuild";
    return p;
  }();
  return loaded;
}

}  // namespace

bool sentencepiece_available() { return plugin().error.empty(); }

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path, const std::string& key) {
  if (!plugin().error.empty()) throw std::runtime_error(key + " " + path + ": " + plugin().error);
  std::string error;
  std::unique_ptr<Tokenizer> tokenizer(plugin().load(path, key, &error));
  if (tokenizer == nullptr) throw std::runtime_error(error);
  return tokenizer;
}

void train_sentencepiece(const SentencepieceTraining& options) {
  if (!plugin().error.empty()) throw std::runtime_error(plugin().error);
  std::string error;
  if (!plugin().train(options, &error)) throw std::runtime_error(error);
}

#else  // built without libsentencepiece

bool sentencepiece_available() { return false; }

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path, const std::string& key) {
  throw std::runtime_error(sentencepiece_missing_message(key, path));
}

void train_sentencepiece(const SentencepieceTraining& options) {
  throw std::runtime_error(sentencepiece_missing_message("train-tokenizer --out", options.model_prefix));
}

#endif

}  // namespace bla::data
