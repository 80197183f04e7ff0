// A file opened for reading at offsets (pread), which can tell whether it
// was changed since it was opened. Token shards are read this way during a
// run: unlike a memory mapping, which faults (SIGBUS) where the file was
// truncated after it was mapped, a read of a shortened file is an error
// that can be reported, and the identity check catches a file rewritten in
// place or replaced by another (the page cache still shares the pages
// between the processes of a run).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>

namespace bla::util {

class ReadOnlyFile {
 public:
  // Throws std::runtime_error naming the file when it cannot be opened.
  explicit ReadOnlyFile(const std::string& path);
  ~ReadOnlyFile();
  ReadOnlyFile(ReadOnlyFile&& other) noexcept;
  ReadOnlyFile& operator=(ReadOnlyFile&& other) noexcept;
  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;

  const std::string& path() const { return path_; }
  // The size when it was opened.
  uint64_t size() const { return size_; }
  // What differs from when the file was opened, in words, or "" when
  // nothing does: its size or modification time (truncated or written in
  // place), or the path now names another file or none (replaced, removed).
  std::string changed_since_opened() const;
  // Copies `bytes` bytes at `offset` into `out`; returns false when the file
  // now ends before offset + bytes (or cannot be read).
  bool read_at(uint64_t offset, size_t bytes, void* out) const;

 private:
  void release() noexcept;
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  timespec modified_{};
};

}  // namespace bla::util
