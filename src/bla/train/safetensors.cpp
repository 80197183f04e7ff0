#include "bla/train/safetensors.h"

#include "bla/util/files.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <vector>

namespace bla::train {

// Tensors are copied byte for byte: the format is little-endian, and so must the host be.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace {

struct DtypeName {
  at::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {{at::kDouble, "F64"}, {at::kFloat, "F32"}, {at::kHalf, "F16"},
                                 {at::kBFloat16, "BF16"}, {at::kLong, "I64"}};
constexpr const char* kSupported = "F64, F32, F16, BF16, I64";

const char* dtype_name(at::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return d.name;
  }
  return nullptr;
}

bool dtype_from_name(const std::string& name, at::ScalarType& type) {
  for (const auto& d : kDtypes) {
    if (name == d.name) {
      type = d.type;
      return true;
    }
  }
  return false;
}

int64_t byte_size(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }
}  // namespace

std::string encode_safetensors(const SafetensorsContents& contents) {
  // Largest elements first: each tensor's byte size is a multiple of its
  // element size, so every tensor starts aligned to its own element size.
  std::vector<std::pair<std::string, at::Tensor>> order;
  for (const auto& [name, tensor] : contents.tensors) {
    if (name.empty() || name == "__metadata__") {
      throw SafetensorsError("safetensors: a tensor cannot be named '" + name + "'");
    }
    if (dtype_name(tensor.scalar_type()) == nullptr) {
      throw SafetensorsError("safetensors: tensor '" + name + "' has dtype " + std::string(c10::toString(tensor.scalar_type())) +
                             "; convert it to one of " + kSupported);
    }
    order.emplace_back(name, tensor.detach().to(torch::kCPU).contiguous());
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second.element_size() > b.second.element_size();
  });
  nlohmann::json header = nlohmann::json::object();
  int64_t offset = 0;
  for (const auto& [name, tensor] : order) {
    const int64_t end = offset + byte_size(tensor);
    header[name] = {{"dtype", dtype_name(tensor.scalar_type())}, {"shape", tensor.sizes().vec()}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  if (!contents.metadata.empty()) header["__metadata__"] = contents.metadata;
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // the data starts at a multiple of 8
  const uint64_t length = text.size();
  std::string bytes;
  bytes.reserve(8 + text.size() + static_cast<size_t>(offset));
  bytes.append(reinterpret_cast<const char*>(&length), 8);
  bytes += text;
  for (const auto& [name, tensor] : order) {
    if (byte_size(tensor) > 0) bytes.append(static_cast<const char*>(tensor.data_ptr()), static_cast<size_t>(byte_size(tensor)));
  }
  return bytes;
}

void save_safetensors(const std::string& path, const SafetensorsContents& contents) {
  util::write_file_atomically(path, encode_safetensors(contents));
}

SafetensorsContents decode_safetensors(const std::string& bytes, const std::string& name) {
  auto fail = [&](const std::string& why) { return SafetensorsError(name + ": " + why); };
  if (bytes.size() < 8) {
    throw fail("file too short (" + std::to_string(bytes.size()) + " bytes) for the 8-byte header length; not a safetensors file");
  }
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  const uint64_t after_length = bytes.size() - 8;
  if (length > after_length) {
    throw fail("truncated: the header says " + std::to_string(length) + " bytes of JSON but only " +
               std::to_string(after_length) + " bytes follow the length");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(length));
  } catch (const nlohmann::json::parse_error& e) {
    throw fail(std::string("the header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) throw fail("the header is JSON but not an object of tensors");
  const char* data = bytes.data() + 8 + length;
  const int64_t data_size = static_cast<int64_t>(after_length - length);

  SafetensorsContents contents;
  std::vector<std::tuple<int64_t, int64_t, std::string>> spans;
  for (const auto& [key, entry] : header.items()) {
    if (key == "__metadata__") {
      if (!entry.is_object()) throw fail("__metadata__ must be an object of strings");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw fail("__metadata__ entry '" + k + "' is not a string");
        contents.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& why) { return fail("tensor '" + key + "': " + why); };
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets")) {
      throw bad("expected an object with dtype, shape and data_offsets");
    }
    at::ScalarType type;
    if (!entry["dtype"].is_string() || !dtype_from_name(entry["dtype"].get<std::string>(), type)) {
      throw bad("dtype " + entry["dtype"].dump() + " is not one bla-train reads (" + kSupported + ")");
    }
    std::vector<int64_t> shape;
    int64_t numel = 1;
    if (!entry["shape"].is_array()) throw bad("shape must be an array of sizes");
    for (const auto& s : entry["shape"]) {
      if (!s.is_number_unsigned()) throw bad("shape " + entry["shape"].dump() + " must hold sizes >= 0");
      shape.push_back(s.get<int64_t>());
      numel *= shape.back();
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned() || offsets[0].get<int64_t>() > offsets[1].get<int64_t>()) {
      throw bad("data_offsets " + offsets.dump() + " must be [begin, end] with 0 <= begin <= end");
    }
    const int64_t begin = offsets[0].get<int64_t>(), end = offsets[1].get<int64_t>();
    auto tensor = torch::empty(shape, torch::TensorOptions().dtype(type));
    if (end - begin != byte_size(tensor)) {
      throw bad("shape " + entry["shape"].dump() + " of " + entry["dtype"].get<std::string>() + " needs " +
                std::to_string(byte_size(tensor)) + " bytes but data_offsets " + offsets.dump() + " span " +
                std::to_string(end - begin));
    }
    contents.tensors[key] = tensor;
    spans.emplace_back(begin, end, key);
  }
  std::sort(spans.begin(), spans.end());
  int64_t indexed = 0;
  for (const auto& span : spans) indexed = std::max(indexed, std::get<1>(span));
  if (indexed > data_size) {
    throw fail("truncated: the header indexes " + std::to_string(indexed) + " bytes of tensor data but only " +
               std::to_string(data_size) + " bytes follow the header");
  }
  int64_t position = 0;
  for (const auto& [begin, end, key] : spans) {
    if (begin != position) {
      throw fail("tensor '" + key + "' starts at data byte " + std::to_string(begin) + " but the tensor before it ends at " +
                 std::to_string(position) + " (the format allows no holes or overlaps)");
    }
    if (end > begin) std::memcpy(contents.tensors[key].data_ptr(), data + begin, static_cast<size_t>(end - begin));
    position = end;
  }
  if (position != data_size) {
    throw fail(std::to_string(data_size - position) + " bytes after the last tensor belong to no tensor (the format allows no holes)");
  }
  return contents;
}

SafetensorsContents load_safetensors(const std::string& path) {
  std::string bytes;
  try {
    bytes = util::read_file(path);
  } catch (const std::exception& e) {
    throw SafetensorsError(path + ": " + e.what());
  }
  return decode_safetensors(bytes, path);
}

std::map<std::string, at::Tensor> module_tensors(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& p : module.named_parameters()) tensors[p.key()] = p.value().detach().to(torch::kCPU).contiguous();
  for (const auto& b : module.named_buffers()) tensors[b.key()] = b.value().detach().to(torch::kCPU).contiguous();
  return tensors;
}

}  // namespace bla::train
