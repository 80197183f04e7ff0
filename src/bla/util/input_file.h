// A look at a file before a reader loads all of it into memory: programs are
// given the wrong file by mistake (a config instead of a checkpoint,
// /dev/zero, a folder), and the mistake should be named, not read until
// memory runs out.
#pragma once

#include <cstdint>
#include <string>

namespace bla::util {

// Throws std::runtime_error, with a message that starts "is ..." (the caller
// puts the path before it), unless `path` is a regular file of at most
// `max_bytes` bytes that is not plain text. `expected` names what was wanted,
// e.g. "a checkpoint": "is a YAML file (text), not a checkpoint".
void check_binary_input(const std::string& path, int64_t max_bytes, const std::string& expected);

}  // namespace bla::util
