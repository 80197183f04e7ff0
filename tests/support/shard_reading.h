// Reading what bla-data prepare wrote, for the data tests.
#pragma once

#include "bla/data/shards.h"
#include "bla/util/files.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace bla::testing {

// Every token of a split's shard files, in order.
inline std::vector<int64_t> split_tokens(const std::string& dir, const data::ShardIndex& index,
                                         const data::SplitInfo& split) {
  std::vector<int64_t> tokens;
  for (const auto& shard : split.shards) {
    const std::string bytes = util::read_file(util::join_path(dir, shard.file));
    for (size_t i = 0; i < bytes.size(); i += static_cast<size_t>(index.token_bytes())) {
      uint32_t v = 0;
      std::memcpy(&v, bytes.data() + i, static_cast<size_t>(index.token_bytes()));  // little-endian
      tokens.push_back(v);
    }
  }
  return tokens;
}

// The message of the exception `f` throws, or "(no error)".
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace bla::testing
