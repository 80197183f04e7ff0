// Files that are either fully written or not there at all.
#pragma once

#include <string>

namespace bla::util {

// Writes `bytes` to `path` atomically: a temporary file in the same folder,
// fsync, rename over `path`, fsync the folder. A crash at any moment leaves
// either the old file or the new one, never a torn one.
void write_file_atomically(const std::string& path, const std::string& bytes);

std::string read_file(const std::string& path);

}  // namespace bla::util
