#include "bla/train/tensorboard.h"

#include "bla/util/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace bla::train {

namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// Protocol buffer wire format, the few pieces an Event needs.
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, (uint64_t{field} << 3) | type); }

void put_little_endian(std::string& out, uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

void put_double(std::string& out, uint32_t field, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  put_key(out, field, kFixed64);
  put_little_endian(out, bits, 8);
}

void put_float(std::string& out, uint32_t field, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  put_key(out, field, kFixed32);
  put_little_endian(out, bits, 4);
}

// int64 fields are varints of the two's complement (10 bytes when negative).
void put_int64(std::string& out, uint32_t field, int64_t value) {
  put_key(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(value));
}

// Strings, bytes and embedded messages alike.
void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out += bytes;
}

// Event field numbers (event.proto).
constexpr uint32_t kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5,
                   kEventSourceMetadata = 10;

std::string event(double wall_time, int64_t step) {
  std::string out;
  put_double(out, kEventWallTime, wall_time);
  put_int64(out, kEventStep, step);
  return out;
}

std::string host_name() {
  char buffer[256] = {};
  std::string name = ::gethostname(buffer, sizeof(buffer) - 1) == 0 ? buffer : "";
  // The name becomes part of a file name: keep it to safe characters.
  for (char& c : name) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_';
    if (!safe) c = '_';
  }
  return name.empty() ? "localhost" : name;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = kCrc32cTable[(crc ^ bytes[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TensorBoardWriter::TensorBoardWriter(const std::string& log_dir) {
  util::create_directories(log_dir);
  const std::string base =
      util::join_path(log_dir, "events.out.tfevents." + std::to_string(std::time(nullptr)) + "." + host_name());
  // Two processes started within the same second (a quick resume) get two files.
  for (int n = 0; fd_ < 0; ++n) {
    path_ = n == 0 ? base : base + "." + std::to_string(n);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0 && (errno != EEXIST || n >= 1000)) {
      throw std::runtime_error("cannot create TensorBoard event file " + path_ + ": " + std::strerror(errno));
    }
  }
  std::string first = event(unix_time_now(), 0);
  put_bytes(first, kEventFileVersion, "brain.Event:2");
  std::string source;
  put_bytes(source, 1, "bla-train");  // SourceMetadata.writer
  put_bytes(first, kEventSourceMetadata, source);
  queue_event(first);
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    flush();
  } catch (const std::exception&) {
  }
  if (fd_ >= 0) ::close(fd_);
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value, double wall_time) {
  std::string summary_value;
  put_bytes(summary_value, 1, tag);                          // Value.tag
  put_float(summary_value, 2, static_cast<float>(value));   // Value.simple_value
  std::string summary;
  put_bytes(summary, 1, summary_value);  // Summary.value
  std::string out = event(wall_time, step);
  put_bytes(out, kEventSummary, summary);
  queue_event(out);
}

void TensorBoardWriter::text(const std::string& tag, int64_t step, const std::string& value, double wall_time) {
  // What the text plugin reads: a scalar DT_STRING tensor, its series marked
  // with plugin_name "text" and data class TENSOR.
  std::string plugin_data;
  put_bytes(plugin_data, 1, "text");  // PluginData.plugin_name
  std::string metadata;
  put_bytes(metadata, 1, plugin_data);  // SummaryMetadata.plugin_data
  put_int64(metadata, 4, 2);            // SummaryMetadata.data_class = DATA_CLASS_TENSOR
  std::string tensor;
  put_int64(tensor, 1, 7);       // TensorProto.dtype = DT_STRING
  put_bytes(tensor, 2, "");      // TensorProto.tensor_shape: rank 0
  put_bytes(tensor, 8, value);   // TensorProto.string_val
  std::string summary_value;
  put_bytes(summary_value, 1, tag);        // Value.tag
  put_bytes(summary_value, 8, tensor);     // Value.tensor
  put_bytes(summary_value, 9, metadata);   // Value.metadata
  std::string summary;
  put_bytes(summary, 1, summary_value);
  std::string out = event(wall_time, step);
  put_bytes(out, kEventSummary, summary);
  queue_event(out);
}

void TensorBoardWriter::queue_event(const std::string& event) {
  std::string length;
  put_little_endian(length, event.size(), 8);
  pending_ += length;
  put_little_endian(pending_, masked_crc32c(length), 4);
  pending_ += event;
  put_little_endian(pending_, masked_crc32c(event), 4);
}

void TensorBoardWriter::flush() {
  size_t done = 0;
  while (done < pending_.size()) {
    const ssize_t n = ::write(fd_, pending_.data() + done, pending_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string reason = std::strerror(errno);
      pending_.erase(0, done);
      throw std::runtime_error("cannot write TensorBoard event file " + path_ + ": " + reason);
    }
    done += static_cast<size_t>(n);
  }
  pending_.clear();
}

}  // namespace bla::train
