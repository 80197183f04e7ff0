// A file mapped read-only into memory (POSIX mmap), unmapped when the object
// dies. bla-data prepare reads its input text this way: the kernel pages it
// in on demand and the page cache, not the heap, holds it. A mapping faults
// (SIGBUS) where the file is truncated while mapped, so files that may change
// under a long run (token shards) are read with ReadOnlyFile instead.
#pragma once

#include <cstddef>
#include <string>

namespace bla::util {

class MappedFile {
 public:
  // Throws std::runtime_error naming the file when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void release() noexcept;
  std::string path_;
  const unsigned char* data_ = nullptr;  // null for an empty file
  size_t size_ = 0;
};

}  // namespace bla::util
