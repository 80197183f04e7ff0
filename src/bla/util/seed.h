// Deterministic seeds derived from the run seed: every random stream of the
// project (examples, data order) is a pure function of (seed, stream, index).
#pragma once

#include <cstdint>

namespace bla::util {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// A seed for item `index` of stream `stream` (a small tag) under `seed`.
inline uint64_t derive_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ index);
}

// Stream tags.
inline constexpr uint64_t kTrainExamples = 0x7472;
inline constexpr uint64_t kTestExamples = 0x7465;
inline constexpr uint64_t kValidationExamples = 0x7661;
inline constexpr uint64_t kDataOrder = 0x6f72;

}  // namespace bla::util
