#include "bla/util/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace bla::util {

namespace {
// True when the bytes read like text: printable ASCII, white space or UTF-8
// lead/continuation bytes, and no NUL.
bool looks_like_text(const unsigned char* bytes, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = bytes[i];
    if (c == '\n' || c == '\r' || c == '\t') continue;
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

void check_binary_input(const std::string& path, int64_t max_bytes, const std::string& expected) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw std::runtime_error(std::string("cannot be opened: ") + std::strerror(errno));
  if (S_ISDIR(info.st_mode)) throw std::runtime_error("is a folder, not " + expected);
  if (!S_ISREG(info.st_mode)) {
    throw std::runtime_error("is not a regular file (a device, pipe or socket), not " + expected);
  }
  if (info.st_size > max_bytes) {
    throw std::runtime_error("is " + std::to_string(info.st_size) + " bytes, more than " + expected + " can be (" +
                             std::to_string(max_bytes) + " bytes at most)");
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("cannot be opened: ") + std::strerror(errno));
  unsigned char head[512];
  const ssize_t n = ::read(fd, head, sizeof(head));
  ::close(fd);
  if (n > 0 && looks_like_text(head, static_cast<size_t>(n))) {
    const bool yaml = ends_with(path, ".yaml") || ends_with(path, ".yml") ||
                      std::memchr(head, ':', static_cast<size_t>(n)) != nullptr;
    throw std::runtime_error(std::string("is a ") + (yaml ? "YAML" : "text") + " file, not " + expected);
  }
}

}  // namespace bla::util
