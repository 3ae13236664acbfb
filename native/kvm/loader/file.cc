#include "loader/file.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>

#include "error.h"

namespace vmm::loader {

File::File(const std::string& path, const char* role, int given_fd) : path_(path), role_(role) {
  int fd = given_fd >= 0 ? fcntl(given_fd, F_DUPFD_CLOEXEC, 0) : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw VmmError(role_ + " " + path + ": " + std::strerror(errno));
  }
  fd_ = Fd(fd);
  struct stat st;
  CheckSys(fstat(fd, &st), "fstat", path);
  if (!S_ISREG(st.st_mode)) throw VmmError(role_ + " " + path + ": not a regular file");
  size_ = st.st_size;
}

bool File::ReadAt(uint64_t offset, void* buf, uint64_t len) const {
  auto* p = static_cast<uint8_t*>(buf);
  while (len > 0) {
    ssize_t n = pread(fd_.get(), p, len, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SysError("pread", errno, path_);
    if (n == 0) return false;
    p += n, offset += n, len -= n;
  }
  return true;
}

void File::ReadIntoGuest(uint64_t offset, uint64_t len, GuestMemory& memory, uint64_t guest_addr) const {
  std::string what = role_ + " " + path_;
  if (!ReadAt(offset, memory.SliceOrThrow(guest_addr, len, what.c_str()), len)) {
    throw VmmError(what + " is truncated");
  }
}

}  // namespace vmm::loader
