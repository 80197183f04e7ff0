#include "bla/train/checkpoint.h"

#include "bla/util/checksum.h"
#include "bla/util/files.h"
#include "bla/util/input_file.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <regex>
#include <sstream>

namespace bla::train {

namespace {
constexpr char kMagic[8] = {'B', 'L', 'A', 'C', 'K', 'P', 'T', '1'};
constexpr size_t kFooterSize = sizeof(kMagic) + 2 * sizeof(uint64_t);

nlohmann::json parameter_shapes(const torch::nn::Module& model) {
  nlohmann::json shapes = nlohmann::json::object();
  for (const auto& p : model.named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  for (const auto& b : model.named_buffers()) shapes[b.key()] = b.value().sizes().vec();
  return shapes;
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

nlohmann::json read_meta(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  archive.read("meta", value);
  return nlohmann::json::parse(value.toStringRef());
}
}  // namespace

std::string encode_checkpoint(const torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                              const nlohmann::json& meta) {
  nlohmann::json full = meta;
  full["parameters"] = parameter_shapes(model);
  full["format"] = "bla-train checkpoint 1";
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
  std::istringstream in(unseal(path));
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  return read_meta(archive);
}

nlohmann::json load_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer) {
  std::istringstream in(unseal(path));
  torch::serialize::InputArchive archive;
  nlohmann::json meta;
  try {
    archive.load_from(in);
    meta = read_meta(archive);
  } catch (const c10::Error& e) {
    throw CheckpointError("checkpoint " + path + " cannot be read: " + e.what_without_backtrace());
  }
  // The same architecture: every parameter present with the same shape.
  const auto expected = parameter_shapes(model);
  const auto& stored = meta.at("parameters");
  for (const auto& [name, shape] : expected.items()) {
    if (!stored.contains(name)) {
      throw CheckpointError("checkpoint " + path + " was made with another model config: it has no parameter '" + name +
                            "'. Its model section was:\n" + meta.value("model_config", std::string("?")));
    }
    if (stored.at(name) != shape) {
      throw CheckpointError("checkpoint " + path + " was made with another model config: parameter '" + name +
                            "' has shape " + stored.at(name).dump() + " there and " + shape.dump() +
                            " here. Its model section was:\n" + meta.value("model_config", std::string("?")));
    }
  }
  if (stored.size() != expected.size()) {
    throw CheckpointError("checkpoint " + path + " was made with another model config (" + std::to_string(stored.size()) +
                          " tensors there, " + std::to_string(expected.size()) + " here). Its model section was:\n" +
                          meta.value("model_config", std::string("?")));
  }
  try {
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    torch::NoGradGuard no_grad;
    model.load(model_archive);
    meta["optimizer_restored"] = false;
    torch::serialize::InputArchive optimizer_archive;
    if (optimizer != nullptr && archive.try_read("optimizer", optimizer_archive)) {
      optimizer->load(optimizer_archive);
      meta["optimizer_restored"] = true;
    }
    torch::Tensor rng;
    archive.read("rng_cpu", rng);
    at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle to the global one
    generator.set_state(rng);
  } catch (const c10::Error& e) {
    throw CheckpointError("checkpoint " + path + " cannot be loaded: " + e.what_without_backtrace());
  }
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
