// The safetensors format (readable from PyTorch, JAX, NumPy without this
// project): an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// then the tensors' raw little-endian bytes; offsets are relative to the end
// of the header. The header is padded with spaces so the data starts at a
// multiple of 8, and tensors are laid out by element size, largest first, so
// each starts aligned to its element size with no gaps (the format forbids
// holes: every data byte belongs to exactly one tensor).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <stdexcept>
#include <string>

namespace torch::nn {
class Module;
}

namespace bla::train {

class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SafetensorsContents {
  std::map<std::string, at::Tensor> tensors;  // CPU, contiguous
  std::map<std::string, std::string> metadata;
};

// Dtypes written and read: F64, F32, F16, BF16, I64.
std::string encode_safetensors(const SafetensorsContents& contents);
// Writes atomically (util::write_file_atomically).
void save_safetensors(const std::string& path, const SafetensorsContents& contents);

// `name` stands for the file in messages. Throws SafetensorsError saying what
// is wrong (truncation, bad JSON, offsets that do not match the shapes).
SafetensorsContents decode_safetensors(const std::string& bytes, const std::string& name);
SafetensorsContents load_safetensors(const std::string& path);

// A module's parameters and buffers by their dotted names (detached CPU copies).
std::map<std::string, at::Tensor> module_tensors(const torch::nn::Module& module);

}  // namespace bla::train
