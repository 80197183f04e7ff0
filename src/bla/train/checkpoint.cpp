#include "bla/train/checkpoint.h"

#include "bla/config/config.h"
#include "bla/util/checksum.h"
#include "bla/util/files.h"
#include "bla/util/input_file.h"

#include <torch/torch.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <regex>
#include <sstream>

namespace bla::train {

namespace {
constexpr char kMagic[8] = {'B', 'L', 'A', 'C', 'K', 'P', 'T', '1'};
constexpr size_t kFooterSize = sizeof(kMagic) + 2 * sizeof(uint64_t);
constexpr const char* kFormat = "bla-train checkpoint 1";

nlohmann::json parameter_shapes(const torch::nn::Module& model) {
  nlohmann::json shapes = nlohmann::json::object();
  for (const auto& p : model.named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  for (const auto& b : model.named_buffers()) shapes[b.key()] = b.value().sizes().vec();
  return shapes;
}

CheckpointError damaged(const std::string& path, const std::string& why) {
  return CheckpointError("checkpoint " + path + " is damaged (" + why +
                         "); delete it and resume from an earlier checkpoint");
}

// The first line of an exception's text, without LibTorch's backtrace.
std::string one_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error != nullptr ? c10_error->what_without_backtrace() : e.what();
  text = text.substr(0, text.find('\n'));
  return text.size() > 300 ? text.substr(0, 300) + "..." : text;
}

// Runs `read`, turning whatever a damaged payload makes LibTorch, the JSON
// parser or a missing key throw into a CheckpointError naming the file.
template <class F>
auto guarded(const std::string& path, const std::string& what, F&& read) {
  try {
    return read();
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw damaged(path, what + ": " + one_line(e));
  }
}

// Checks the seal and returns the archive bytes.
std::string unseal(const std::string& path) {
  std::string bytes;
  try {
    util::check_binary_input(path, int64_t{1} << 36, "a checkpoint");  // 64 GiB
    bytes = util::read_file(path);
  } catch (const std::exception& e) {
    throw CheckpointError("checkpoint " + path + ": " + e.what());
  }
  auto corrupt = [&](const std::string& why) {
    return CheckpointError("checkpoint " + path + " is corrupt or truncated (" + why +
                           "); delete it and resume from an earlier checkpoint");
  };
  if (bytes.size() < kFooterSize) throw corrupt("file too short");
  const char* footer = bytes.data() + bytes.size() - kFooterSize;
  if (std::memcmp(footer, kMagic, sizeof(kMagic)) != 0) throw corrupt("no bla-train seal at the end");
  uint64_t size = 0, hash = 0;
  std::memcpy(&size, footer + sizeof(kMagic), sizeof(size));
  std::memcpy(&hash, footer + sizeof(kMagic) + sizeof(size), sizeof(hash));
  if (size != bytes.size() - kFooterSize) throw corrupt("size does not match the seal");
  if (util::fnv1a64(bytes.data(), size) != hash) throw corrupt("checksum mismatch");
  bytes.resize(size);
  return bytes;
}

// Unseals and deserialises the payload into `archive`; returns the meta,
// which is checked to be an object with the format and the tensor shapes.
nlohmann::json open_payload(const std::string& path, torch::serialize::InputArchive& archive) {
  std::istringstream in(unseal(path));
  guarded(path, "the archive does not load", [&] { archive.load_from(in); });
  auto meta = guarded(path, "its meta cannot be read", [&] {
    c10::IValue value;
    archive.read("meta", value);
    return nlohmann::json::parse(value.toStringRef());
  });
  if (!meta.is_object() || meta.value("format", std::string()) != kFormat) {
    throw damaged(path, std::string("its meta does not say format \"") + kFormat + "\"");
  }
  if (!meta.contains("parameters") || !meta.at("parameters").is_object()) {
    throw damaged(path, "its meta lists no parameters");
  }
  return meta;
}

// Every tensor of an archive and its sub-archives, by dotted name (the
// names Module::named_parameters gives).
void collect_tensors(torch::serialize::InputArchive& archive, const std::string& prefix,
                     std::map<std::string, torch::Tensor>& out) {
  for (const auto& key : archive.keys()) {
    c10::IValue value;
    archive.read(key, value);
    torch::serialize::InputArchive child;
    if (value.isTensor()) {
      out[prefix + key] = value.toTensor();
    } else if (archive.try_read(key, child)) {
      collect_tensors(child, prefix + key + ".", out);
    }
  }
}

// ---- model_config_difference ----

std::string flow(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  YAML::Emitter out;  // flow style throughout (`out << YAML::Flow` would keep a loaded node's block style)
  out.SetMapFormat(YAML::Flow);
  out.SetSeqFormat(YAML::Flow);
  out << node;
  return out.c_str();
}

// A stored model section on one line, for an error message: YAML flow style
// where it parses, and never a line break (a flipped byte can make one).
std::string one_line_yaml(const std::string& yaml_text) {
  std::string text;
  try {
    text = flow(YAML::Load(yaml_text));
  } catch (const YAML::Exception&) {
    text = yaml_text;
  }
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text;
}

bool same_scalar(const std::string& a, const std::string& b) {
  if (a == b) return true;
  auto number = [](const std::string& text, double& value) {
    char* end = nullptr;
    value = std::strtod(text.c_str(), &end);
    return !text.empty() && end == text.c_str() + text.size();
  };
  double x = 0, y = 0;
  if (number(a, x) && number(b, y)) return x == y;
  auto boolean = [](const std::string& text, int& value) {
    if (text == "true" || text == "True" || text == "TRUE") return value = 1, true;
    if (text == "false" || text == "False" || text == "FALSE") return value = 0, true;
    return false;
  };
  int p = 0, q = 0;
  return boolean(a, p) && boolean(b, q) && p == q;
}

std::string differ(const std::string& path, const YAML::Node& saved, const YAML::Node& current) {
  return path + ": checkpoint has " + flow(saved) + ", config has " + flow(current);
}

std::string first_difference(const YAML::Node& saved, const YAML::Node& current, const std::string& path);

// model.mixer as one entry per layer: the resolved list holds one entry per
// item of a pattern repeated over model.layers, so [bla] and [bla, bla] are
// the same 2-layer model. The node as it is when it is not such a list.
YAML::Node mixer_per_layer(const YAML::Node& model) {
  const YAML::Node mixer = model["mixer"], layers = model["layers"];
  if (!mixer.IsSequence() || mixer.size() == 0 || !layers || !layers.IsScalar()) return mixer;
  size_t n = 0;
  try {
    n = layers.as<size_t>();
  } catch (const std::exception&) {
    return mixer;
  }
  if (n == 0 || n % mixer.size() != 0) return mixer;
  YAML::Node expanded(YAML::NodeType::Sequence);
  for (size_t layer = 0; layer < n; ++layer) expanded.push_back(mixer[layer % mixer.size()]);
  return expanded;
}

std::string mixer_difference(const YAML::Node& saved_model, const YAML::Node& current_model, const std::string& path) {
  const YAML::Node a = mixer_per_layer(saved_model), b = mixer_per_layer(current_model);
  if (!a.IsSequence() || !b.IsSequence() || a.size() != b.size() || a.size() == 0) {
    return first_difference(saved_model["mixer"], current_model["mixer"], path);
  }
  auto uniform = [](const YAML::Node& list) {
    for (size_t i = 1; i < list.size(); ++i) {
      if (!first_difference(list[0], list[i], "").empty()) return false;
    }
    return true;
  };
  if (uniform(a) && uniform(b)) return first_difference(a[0], b[0], path);  // one mixer config for every layer
  for (size_t layer = 0; layer < a.size(); ++layer) {
    std::string d = first_difference(a[layer], b[layer], path + "[" + std::to_string(layer) + "]");
    if (!d.empty()) return d;
  }
  return "";
}

std::string first_difference(const YAML::Node& saved, const YAML::Node& current, const std::string& path) {
  if (saved.IsMap() && current.IsMap()) {
    // A mixer of another type: say so rather than list the keys that follow from it.
    if (saved["type"] && current["type"] && saved["type"].IsScalar() && current["type"].IsScalar() &&
        saved["type"].Scalar() != current["type"].Scalar()) {
      return differ(path, saved["type"], current["type"]);
    }
    for (const auto& kv : saved) {
      const std::string key = kv.first.Scalar();
      const YAML::Node other = current[key];
      if (!other) return path + "." + key + ": checkpoint has " + flow(kv.second) + ", config has no such key";
      std::string d = path == "model" && key == "mixer" ? mixer_difference(saved, current, path + "." + key)
                                                        : first_difference(kv.second, other, path + "." + key);
      if (!d.empty()) return d;
    }
    for (const auto& kv : current) {
      const std::string key = kv.first.Scalar();
      if (!saved[key]) return path + "." + key + ": checkpoint has no such key, config has " + flow(kv.second);
    }
    return "";
  }
  if (saved.IsSequence() && current.IsSequence()) {
    if (saved.size() != current.size()) return differ(path, saved, current);
    for (size_t i = 0; i < saved.size(); ++i) {
      std::string d = first_difference(saved[i], current[i], path + "[" + std::to_string(i) + "]");
      if (!d.empty()) return d;
    }
    return "";
  }
  if (saved.IsScalar() && current.IsScalar()) return same_scalar(saved.Scalar(), current.Scalar()) ? "" : differ(path, saved, current);
  if (saved.Type() == current.Type() && !saved.IsDefined()) return "";
  if ((saved.IsNull() || !saved.IsDefined()) && (current.IsNull() || !current.IsDefined())) return "";
  return differ(path, saved, current);
}
}  // namespace

std::string model_config_yaml(const config::Config& config) {
  YAML::Emitter out;
  out << config.resolved["model"];
  return out.c_str();
}

std::string model_config_difference(const std::string& saved, const std::string& current) {
  YAML::Node a, b;
  try {
    a = YAML::Load(saved);
  } catch (const std::exception& e) {
    return "model: the checkpoint's model section is not valid YAML (" + std::string(e.what()) + ")";
  }
  try {
    b = YAML::Load(current);
  } catch (const std::exception& e) {
    return "model: the config's model section is not valid YAML (" + std::string(e.what()) + ")";
  }
  return first_difference(a, b, "model");
}

std::string data_config_difference(const std::string& saved_config, const std::string& current_config) {
  YAML::Node a, b;
  try {
    a = YAML::Clone(YAML::Load(saved_config)["data"]);
    b = YAML::Clone(YAML::Load(current_config)["data"]);
  } catch (const std::exception& e) {
    return std::string("data: a config is not valid YAML (") + e.what() + ")";
  }
  for (auto* node : {&a, &b}) {
    if (node->IsMap()) {
      node->remove("path");
      node->remove("test_examples");
      node->remove("validation_examples");  // neither changes what the run trains on
    }
  }
  return first_difference(a, b, "data");
}

std::string encode_checkpoint(const torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                              const nlohmann::json& meta) {
  nlohmann::json full = meta;
  full["parameters"] = parameter_shapes(model);
  full["format"] = kFormat;
  torch::serialize::OutputArchive archive;
  archive.write("meta", c10::IValue(full.dump()));
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  archive.write("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
  std::ostringstream out;
  archive.save_to(out);
  std::string bytes = out.str();
  uint64_t size = bytes.size(), hash = util::fnv1a64(bytes.data(), bytes.size());
  bytes.append(kMagic, sizeof(kMagic));
  bytes.append(reinterpret_cast<const char*>(&size), sizeof(size));
  bytes.append(reinterpret_cast<const char*>(&hash), sizeof(hash));
  return bytes;
}

void save_checkpoint(const std::string& path, const torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                     const nlohmann::json& meta) {
  util::write_file_atomically(path, encode_checkpoint(model, optimizer, meta));
}

nlohmann::json read_checkpoint_meta(const std::string& path) {
  torch::serialize::InputArchive archive;
  return open_payload(path, archive);
}

void verify_checkpoint(const std::string& path) {
  torch::serialize::InputArchive archive;
  const auto meta = open_payload(path, archive);
  std::map<std::string, torch::Tensor> tensors;
  guarded(path, "its model tensors cannot be read", [&] {
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    collect_tensors(model_archive, "", tensors);
  });
  const auto& listed = meta.at("parameters");
  for (const auto& [name, shape] : listed.items()) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) throw damaged(path, "its meta lists tensor '" + name + "', the model archive has none");
    const nlohmann::json stored = it->second.sizes().vec();
    if (stored != shape) {
      throw damaged(path, "tensor '" + name + "' has shape " + stored.dump() + ", its meta says " + shape.dump());
    }
  }
  if (tensors.size() != listed.size()) {
    throw damaged(path, "the model archive has " + std::to_string(tensors.size()) + " tensors, its meta lists " +
                            std::to_string(listed.size()));
  }
  guarded(path, "its optimizer state cannot be read", [&] {
    torch::serialize::InputArchive optimizer_archive;
    std::map<std::string, torch::Tensor> state;
    if (archive.try_read("optimizer", optimizer_archive)) collect_tensors(optimizer_archive, "", state);
  });
  guarded(path, "its RNG state cannot be read", [&] {
    torch::Tensor rng;
    archive.read("rng_cpu", rng);
    auto scratch = at::detail::createCPUGenerator();  // checks the state as the load will, leaving the global one alone
    scratch.set_state(rng);
  });
}

nlohmann::json load_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer,
                               const std::string& expected_model_config) {
  torch::serialize::InputArchive archive;
  nlohmann::json meta = open_payload(path, archive);
  const std::string saved_model_config =
      meta.contains("model_config") && meta.at("model_config").is_string() ? meta.at("model_config").get<std::string>()
                                                                            : std::string("?");
  // The same model config, key by key (mixer types and parameters that leave
  // the shapes alone, such as slots, window or rope, included).
  if (!expected_model_config.empty() && saved_model_config != "?") {
    const std::string difference = model_config_difference(saved_model_config, expected_model_config);
    if (!difference.empty()) {
      throw CheckpointError("checkpoint " + path + " was made with another model config (" + difference +
                            "); load it with the model section it was made with, or start a new run");
    }
  }
  // The same architecture: every parameter present with the same shape.
  const auto expected = parameter_shapes(model);
  const auto& stored = meta.at("parameters");
  for (const auto& [name, shape] : expected.items()) {
    if (!stored.contains(name)) {
      throw CheckpointError("checkpoint " + path + " was made with another model config: it has no parameter '" + name +
                            "'. Its model section was: " + one_line_yaml(saved_model_config));
    }
    if (stored.at(name) != shape) {
      throw CheckpointError("checkpoint " + path + " was made with another model config: parameter '" + name +
                            "' has shape " + stored.at(name).dump() + " there and " + shape.dump() +
                            " here. Its model section was: " + one_line_yaml(saved_model_config));
    }
  }
  if (stored.size() != expected.size()) {
    throw CheckpointError("checkpoint " + path + " was made with another model config (" + std::to_string(stored.size()) +
                          " tensors there, " + std::to_string(expected.size()) + " here). Its model section was: " +
                          one_line_yaml(saved_model_config));
  }
  guarded(path, "its model tensors cannot be loaded", [&] {
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    torch::NoGradGuard no_grad;
    model.load(model_archive);
  });
  // Module::load takes each stored tensor as it is: a shape damaged in the
  // payload would otherwise pass unnoticed.
  const auto loaded = parameter_shapes(model);
  for (const auto& [name, shape] : expected.items()) {
    if (loaded.at(name) != shape) {
      throw damaged(path, "tensor '" + name + "' has shape " + loaded.at(name).dump() + ", its meta says " + shape.dump());
    }
  }
  meta["optimizer_restored"] = false;
  guarded(path, "its optimizer state cannot be loaded", [&] {
    torch::serialize::InputArchive optimizer_archive;
    if (optimizer != nullptr && archive.try_read("optimizer", optimizer_archive)) {
      optimizer->load(optimizer_archive);
      meta["optimizer_restored"] = true;
    }
  });
  guarded(path, "its RNG state cannot be loaded", [&] {
    torch::Tensor rng;
    archive.read("rng_cpu", rng);
    at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle to the global one
    generator.set_state(rng);
  });
  return meta;
}

std::string CheckpointDirectory::path_for(int64_t step) const {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld.ckpt", static_cast<long long>(step));
  return util::join_path(dir_, name);
}

std::vector<std::string> CheckpointDirectory::list() const {
  std::vector<std::string> paths;
  static const std::regex pattern(R"(step-\d{8,}\.ckpt)");
  for (const auto& name : util::list_directory(dir_)) {
    if (std::regex_match(name, pattern)) paths.push_back(util::join_path(dir_, name));
  }
  std::sort(paths.begin(), paths.end());  // zero-padded steps sort by name
  return paths;
}

std::string CheckpointDirectory::save(int64_t step, const torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                                      const nlohmann::json& meta) const {
  std::string path = path_for(step);
  save_checkpoint(path, model, optimizer, meta);
  auto all = list();
  for (size_t i = 0; i + static_cast<size_t>(keep_) < all.size(); ++i) util::remove_file(all[i]);
  return path;
}

}  // namespace bla::train
