#include "snapshot/memory_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "fd.h"
#include "snapshot/byte_stream.h"
#include "snapshot/crc64.h"

namespace vmm::snapshot {

namespace {
constexpr uint64_t kPage = 4096;

bool AllZero(const uint8_t* page) {
  static const uint8_t zeros[kPage] = {};
  return std::memcmp(page, zeros, kPage) == 0;
}

uint64_t AddPage(uint64_t crc, uint64_t offset, const uint8_t* page) {
  crc = Crc64(reinterpret_cast<const uint8_t*>(&offset), sizeof offset, crc);
  return Crc64(page, kPage, crc);
}
}  // namespace

uint64_t WriteMemoryFile(const GuestMemory& memory, const std::string& path) {
  const uint64_t size = memory.size();
  const uint8_t* base = memory.regions()[0].host;  // the regions lie end to end in one mapping
  std::vector<unsigned char> resident((size + kPage - 1) / kPage);
  CheckSys(mincore(const_cast<uint8_t*>(base), size, resident.data()), "mincore", "guest memory");

  const std::string temporary = path + ".tmp-" + std::to_string(getpid());
  Fd fd(CheckSys(open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), "open", temporary));
  try {
    CheckSys(ftruncate(fd.get(), static_cast<off_t>(size)), "ftruncate", temporary);
    uint64_t crc = 0;
    for (uint64_t page = 0; page < resident.size(); ++page) {
      // A page never touched reads as zeros: a hole says so without a read.
      if (!(resident[page] & 1)) continue;
      const uint64_t offset = page * kPage;
      const uint8_t* data = base + offset;
      if (AllZero(data)) continue;
      for (uint64_t done = 0; done < kPage;) {
        const ssize_t n = pwrite(fd.get(), data + done, kPage - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        CheckSys(n, "pwrite", temporary);
        done += static_cast<uint64_t>(n);
      }
      crc = AddPage(crc, offset, data);
    }
    CheckSys(fsync(fd.get()), "fsync", temporary);
    fd.Reset();
    CheckSys(rename(temporary.c_str(), path.c_str()), "rename", path);
    return crc;
  } catch (...) {
    unlink(temporary.c_str());
    throw;
  }
}

uint64_t MemoryFileChecksum(int fd, uint64_t size, const std::string& path) {
  struct stat st;
  CheckSys(fstat(fd, &st), "fstat", path);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != size) {
    throw SnapshotError("the snapshot's guest memory " + path + " is not a file of " + std::to_string(size) +
                        " bytes: delete the snapshot and vmrun takes a new one");
  }
  uint64_t crc = 0;
  std::vector<uint8_t> page(kPage);
  // Only the data the file holds: holes are the zero pages WriteMemoryFile left out.
  for (off_t at = 0;;) {
    at = lseek(fd, at, SEEK_DATA);
    if (at < 0 && errno == ENXIO) break;  // no data after `at`
    CheckSys(at, "lseek(SEEK_DATA)", path);
    if (static_cast<uint64_t>(at) >= size) break;
    const off_t end = CheckSys(lseek(fd, at, SEEK_HOLE), "lseek(SEEK_HOLE)", path);
    for (uint64_t offset = static_cast<uint64_t>(at) & ~(kPage - 1); offset < static_cast<uint64_t>(end); offset += kPage) {
      for (uint64_t done = 0; done < kPage;) {
        const ssize_t n = pread(fd, page.data() + done, kPage - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        CheckSys(n, "pread", path);
        if (n == 0) throw SnapshotError("the snapshot's guest memory " + path + " shrank while it was read");
        done += static_cast<uint64_t>(n);
      }
      if (!AllZero(page.data())) crc = AddPage(crc, offset, page.data());
    }
    at = end;
  }
  return crc;
}

}  // namespace vmm::snapshot
