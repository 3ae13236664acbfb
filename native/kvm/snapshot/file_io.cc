#include "snapshot/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include "fd.h"
#include "snapshot/byte_stream.h"

namespace vmm::snapshot {

void WriteFileAtomically(const std::string& path, const std::function<void(int fd, const std::string& name)>& fill) {
  const std::string temporary = path + ".tmp-" + std::to_string(getpid());
  Fd fd(CheckSys(open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), "open", temporary));
  try {
    fill(fd.get(), temporary);
    CheckSys(fsync(fd.get()), "fsync", temporary);
    fd.Reset();
    CheckSys(rename(temporary.c_str(), path.c_str()), "rename", path);
  } catch (...) {
    unlink(temporary.c_str());
    throw;
  }
}

void WriteAt(int fd, const uint8_t* data, size_t len, uint64_t offset, const std::string& name) {
  for (size_t done = 0; done < len;) {
    const ssize_t n = pwrite(fd, data + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    CheckSys(n, "pwrite", name);
    done += static_cast<size_t>(n);
  }
}

void ReadAt(int fd, uint8_t* data, size_t len, uint64_t offset, const std::string& name) {
  for (size_t done = 0; done < len;) {
    const ssize_t n = pread(fd, data + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    CheckSys(n, "pread", name);
    if (n == 0) throw SnapshotError("the snapshot's file " + name + " shrank while it was read: delete it and vmrun takes a new snapshot");
    done += static_cast<size_t>(n);
  }
}

}  // namespace vmm::snapshot
