// FNV-1a, 64 bit: the checksum of checkpoints and token shards. Not
// cryptographic; it catches torn, truncated and flipped files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace bla::util {

inline constexpr uint64_t kFnv1a64Offset = 0xcbf29ce484222325ULL;

// Continues `hash` over `size` bytes; start from kFnv1a64Offset.
inline uint64_t fnv1a64(const void* data, size_t size, uint64_t hash = kFnv1a64Offset) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

inline uint64_t fnv1a64(const std::string& bytes) { return fnv1a64(bytes.data(), bytes.size()); }

// 16 lower-case hex digits (JSON numbers cannot hold every uint64 exactly).
inline std::string hex64(uint64_t value) {
  static const char digits[] = "0123456789abcdef";
  std::string text(16, '0');
  for (int i = 15; i >= 0; --i, value >>= 4) text[static_cast<size_t>(i)] = digits[value & 0xf];
  return text;
}

}  // namespace bla::util
