#include "bla/util/read_only_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace bla::util {

ReadOnlyFile::ReadOnlyFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd_, &info) != 0) {
    const int error = errno;
    release();
    throw std::runtime_error("cannot stat " + path + ": " + std::strerror(error));
  }
  size_ = static_cast<uint64_t>(info.st_size);
  device_ = info.st_dev;
  inode_ = info.st_ino;
  modified_ = info.st_mtim;
}

ReadOnlyFile::~ReadOnlyFile() { release(); }

ReadOnlyFile::ReadOnlyFile(ReadOnlyFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      size_(other.size_),
      device_(other.device_),
      inode_(other.inode_),
      modified_(other.modified_) {}

ReadOnlyFile& ReadOnlyFile::operator=(ReadOnlyFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
    device_ = other.device_;
    inode_ = other.inode_;
    modified_ = other.modified_;
  }
  return *this;
}

std::string ReadOnlyFile::changed_since_opened() const {
  struct stat now {};
  if (::fstat(fd_, &now) != 0) return std::string("cannot stat it: ") + std::strerror(errno);
  if (static_cast<uint64_t>(now.st_size) != size_) {
    return "it has " + std::to_string(now.st_size) + " bytes, " + std::to_string(size_) + " when it was opened";
  }
  if (now.st_mtim.tv_sec != modified_.tv_sec || now.st_mtim.tv_nsec != modified_.tv_nsec) {
    return "it was written since it was opened";
  }
  struct stat at_path {};
  if (::stat(path_.c_str(), &at_path) != 0) return std::string("it is gone: ") + std::strerror(errno);
  if (at_path.st_dev != device_ || at_path.st_ino != inode_) return "another file was put in its place";
  return "";
}

bool ReadOnlyFile::read_at(uint64_t offset, size_t bytes, void* out) const {
  auto* to = static_cast<char*>(out);
  while (bytes > 0) {
    const ssize_t n = ::pread(fd_, to, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // an error, or the end of a file now shorter than asked
    to += n;
    offset += static_cast<uint64_t>(n);
    bytes -= static_cast<size_t>(n);
  }
  return true;
}

void ReadOnlyFile::release() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace bla::util
