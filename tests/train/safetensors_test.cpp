// The safetensors writer and reader: the header is valid JSON whose offsets
// index the data exactly (aligned, no holes), tensors round-trip bit for bit,
// and damaged files are rejected with a message saying what is wrong.
#include "bla/config/config.h"
#include "bla/model/lm.h"
#include "bla/train/safetensors.h"
#include "bla/util/files.h"

#include "support/run_helpers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstring>

using bla::train::SafetensorsContents;
using bla::train::SafetensorsError;

namespace {

SafetensorsContents sample() {
  torch::manual_seed(0);
  SafetensorsContents c;
  c.tensors["a.f32"] = torch::randn({3, 5});                          // 60 bytes: not a multiple of 8
  c.tensors["b.f64"] = torch::randn({7}, torch::kDouble);
  c.tensors["c.bf16"] = torch::randn({3}).to(torch::kBFloat16);        // 6 bytes
  c.tensors["d.f16"] = torch::randn({2, 1, 3}).to(torch::kHalf);
  c.tensors["e.i64"] = torch::tensor(std::vector<int64_t>{-3, 0, int64_t{1} << 40});
  c.tensors["f.empty"] = torch::zeros({0, 4});
  c.tensors["g.scalar"] = torch::tensor(2.5);
  c.metadata = {{"format", "pt"}, {"note", "héllo \"quoted\""}};
  return c;
}

nlohmann::json header_of(const std::string& bytes, uint64_t* length = nullptr) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (length) *length = n;
  return nlohmann::json::parse(bytes.substr(8, n));
}

size_t element_size(const std::string& dtype) {
  return dtype == "F64" || dtype == "I64" ? 8 : dtype == "F32" ? 4 : 2;
}

TEST(Safetensors, HeaderIsValidJsonIndexingTheDataExactly) {
  const auto bytes = bla::train::encode_safetensors(sample());
  uint64_t n = 0;
  auto header = header_of(bytes, &n);
  EXPECT_EQ((8 + n) % 8, 0u) << "the data starts 8-byte aligned";
  const size_t data_size = bytes.size() - 8 - n;
  ASSERT_EQ(header["__metadata__"], (nlohmann::json{{"format", "pt"}, {"note", "héllo \"quoted\""}}));
  // Each tensor's span matches its shape and dtype, starts aligned to its
  // element size, and the spans tile the data with no hole or overlap.
  std::vector<std::pair<size_t, size_t>> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    const auto dtype = entry["dtype"].get<std::string>();
    size_t numel = 1;
    for (const auto& s : entry["shape"]) numel *= s.get<size_t>();
    const size_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
    EXPECT_EQ(end - begin, numel * element_size(dtype)) << name;
    EXPECT_EQ((8 + n + begin) % element_size(dtype), 0u) << name << " is aligned to its element size";
    spans.emplace_back(begin, end);
  }
  EXPECT_EQ(header["a.f32"]["dtype"], "F32");
  EXPECT_EQ(header["b.f64"]["dtype"], "F64");
  EXPECT_EQ(header["c.bf16"]["dtype"], "BF16");
  EXPECT_EQ(header["d.f16"]["dtype"], "F16");
  EXPECT_EQ(header["e.i64"]["dtype"], "I64");
  EXPECT_EQ(header["d.f16"]["shape"], (nlohmann::json{2, 1, 3}));
  EXPECT_EQ(header["g.scalar"]["shape"], nlohmann::json::array());
  ASSERT_EQ(spans.size(), 7u);
  std::sort(spans.begin(), spans.end());
  size_t position = 0;
  for (const auto& [begin, end] : spans) {
    EXPECT_EQ(begin, position);
    position = end;
  }
  EXPECT_EQ(position, data_size);
  // The bytes are the tensors' little-endian values.
  const size_t e_begin = header["e.i64"]["data_offsets"][0];
  int64_t third = 0;
  std::memcpy(&third, bytes.data() + 8 + n + e_begin + 16, 8);
  EXPECT_EQ(third, int64_t{1} << 40);
}

TEST(Safetensors, RoundTripsExactly) {
  bla::testing::TempDir tmp;
  const auto original = sample();
  bla::train::save_safetensors(tmp / "m.safetensors", original);
  const auto loaded = bla::train::load_safetensors(tmp / "m.safetensors");
  EXPECT_EQ(loaded.metadata, original.metadata);
  ASSERT_EQ(loaded.tensors.size(), original.tensors.size());
  for (const auto& [name, tensor] : original.tensors) {
    const auto& back = loaded.tensors.at(name);
    EXPECT_EQ(back.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_EQ(back.sizes(), tensor.sizes()) << name;
    EXPECT_TRUE(torch::equal(back, tensor)) << name;
  }
  // Encoding what was decoded gives the same bytes.
  EXPECT_EQ(bla::train::encode_safetensors(loaded), bla::util::read_file(tmp / "m.safetensors"));
}

TEST(Safetensors, AModelsWeightsRoundTrip) {
  auto config = bla::config::parse_config(bla::testing::tiny_mqar_config("[bla, attention]", "  mixers: {bla: {window: 8, slots: 4, chunk: 4}}\n"), "tiny.yaml");
  bla::model::LanguageModel model(config.model, 64, 32);
  SafetensorsContents c;
  c.tensors = bla::train::module_tensors(*model);
  EXPECT_TRUE(c.tensors.count("embedding.weight"));
  EXPECT_TRUE(c.tensors.count("blocks.0.mixer_norm.weight"));
  const auto loaded = bla::train::decode_safetensors(bla::train::encode_safetensors(c), "model.safetensors");
  int64_t numel = 0;
  for (const auto& [name, tensor] : loaded.tensors) {
    EXPECT_TRUE(torch::equal(tensor, c.tensors.at(name))) << name;
    numel += tensor.numel();
  }
  int64_t buffers = 0;
  for (const auto& b : model->named_buffers()) buffers += b.value().numel();
  EXPECT_EQ(numel, model->num_parameters() + buffers);
}

void expect_rejected(const std::string& bytes, const std::string& message) {
  try {
    bla::train::decode_safetensors(bytes, "m.safetensors");
    ADD_FAILURE() << "accepted; expected: " << message;
  } catch (const SafetensorsError& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

TEST(Safetensors, DamagedFilesAreRejected) {
  SafetensorsContents c;
  c.tensors["w"] = torch::ones({4});                   // 16 bytes of F32
  c.tensors["x"] = torch::zeros({2}, torch::kDouble);  // 16 bytes of F64, laid out first
  const auto bytes = bla::train::encode_safetensors(c);
  expect_rejected(bytes.substr(0, bytes.size() - 3),
                  "m.safetensors: truncated: the header indexes 32 bytes of tensor data but only 29 bytes follow the header");
  expect_rejected(bytes.substr(0, 5), "m.safetensors: file too short (5 bytes) for the 8-byte header length; not a "
                                      "safetensors file");
  uint64_t n = 0;
  header_of(bytes, &n);
  expect_rejected(bytes.substr(0, 20), "m.safetensors: truncated: the header says " + std::to_string(n) +
                                           " bytes of JSON but only 12 bytes follow the length");
  expect_rejected(bytes + "abcd", "m.safetensors: 4 bytes after the last tensor belong to no tensor (the format allows "
                                  "no holes)");

  auto with_header = [](const std::string& json, size_t data_bytes) {
    std::string out(8, '\0');
    const uint64_t length = json.size();
    std::memcpy(out.data(), &length, 8);
    return out + json + std::string(data_bytes, '\0');
  };
  expect_rejected(with_header(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]})", 16),
                  "m.safetensors: the header is not valid JSON ([json.exception.parse_error.101] parse error at line 1, "
                  "column 62: syntax error while parsing object - unexpected end of input; expected '}')");
  expect_rejected(with_header(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}})", 12),
                  "m.safetensors: tensor 'w': shape [4] of F32 needs 16 bytes but data_offsets [0,12] span 12");
  expect_rejected(with_header(R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})", 4),
                  "m.safetensors: tensor 'w': dtype \"U8\" is not one bla-train reads (F64, F32, F16, BF16, I64)");
  expect_rejected(with_header(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})", 12),
                  "m.safetensors: tensor 'w' starts at data byte 8 but the tensor before it ends at 0 (the format allows "
                  "no holes or overlaps)");
  // A file written by another tool, header unpadded: accepted.
  auto plain = with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 0);
  const float values[2] = {1.5f, -2.0f};
  plain.append(reinterpret_cast<const char*>(values), 8);
  auto loaded = bla::train::decode_safetensors(plain, "m.safetensors");
  EXPECT_TRUE(torch::equal(loaded.tensors.at("w"), torch::tensor({1.5f, -2.0f})));
}

TEST(Safetensors, UnsupportedTensorsAreRefusedWhenWriting) {
  SafetensorsContents c;
  c.tensors["mask"] = torch::ones({2}, torch::kBool);
  try {
    bla::train::encode_safetensors(c);
    ADD_FAILURE() << "a bool tensor was written";
  } catch (const SafetensorsError& e) {
    EXPECT_STREQ(e.what(), "safetensors: tensor 'mask' has dtype Bool; convert it to one of F64, F32, F16, BF16, I64");
  }
}

}  // namespace
