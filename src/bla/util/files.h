// Files that are either fully written or not there at all, and the few path
// operations the project needs.
//
// The path helpers are plain POSIX on purpose: std::filesystem is not used
// anywhere in bla-train. PyTorch's wheels (2.5 and later) export the
// std::filesystem symbols of a statically linked libstdc++ from
// libtorch_cpu.so (pytorch/pytorch#133437); they interpose the system
// libstdc++'s and programs that call them crash with a jump to an invalid
// address. A test (StdFilesystem.IsNotUsed) keeps it that way.
#pragma once

#include <string>
#include <vector>

namespace bla::util {

// Writes `bytes` to `path` atomically: a temporary file in the same folder,
// fsync, rename over `path`, fsync the folder. A crash at any moment leaves
// either the old file or the new one, never a torn one.
void write_file_atomically(const std::string& path, const std::string& bytes);

std::string read_file(const std::string& path);

// `a/b`, without doubling a slash; `b` when it is absolute or `a` is empty.
std::string join_path(const std::string& a, const std::string& b);
// The folder part of `path` ("." when there is none).
std::string parent_path(const std::string& path);
// The last component of `path`.
std::string file_name(const std::string& path);

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
// mkdir -p; throws std::runtime_error naming the folder on failure.
void create_directories(const std::string& path);
// The names in a folder (not "." or ".."), sorted; empty if it does not exist.
std::vector<std::string> list_directory(const std::string& path);
// Removes a file; returns false if it was not there. Throws on other errors.
bool remove_file(const std::string& path);
// rm -rf; errors are ignored (for temporary folders).
void remove_tree(const std::string& path) noexcept;
// A new, empty folder under $TMPDIR (or /tmp), named prefix-XXXXXX.
std::string make_temp_directory(const std::string& prefix);

}  // namespace bla::util
