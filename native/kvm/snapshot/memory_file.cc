#include "snapshot/memory_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "snapshot/byte_stream.h"
#include "snapshot/crc64.h"
#include "snapshot/file_io.h"

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
  uint64_t crc = 0;
  WriteFileAtomically(path, [&](int fd, const std::string& name) { crc = WriteMemoryFile(memory, fd, name); });
  return crc;
}

uint64_t WriteMemoryFile(const GuestMemory& memory, int fd, const std::string& name) {
  const uint64_t size = memory.size();
  const uint8_t* base = memory.regions()[0].host;  // the regions lie end to end in one mapping
  std::vector<unsigned char> resident((size + kPage - 1) / kPage);
  CheckSys(mincore(const_cast<uint8_t*>(base), size, resident.data()), "mincore", "guest memory");

  uint64_t crc = 0;
  CheckSys(ftruncate(fd, 0), "ftruncate", name);  // holes only where nothing was written
  CheckSys(ftruncate(fd, static_cast<off_t>(size)), "ftruncate", name);
  for (uint64_t page = 0; page < resident.size(); ++page) {
    // A page never touched reads as zeros: a hole says so without a read.
    if (!(resident[page] & 1)) continue;
    const uint64_t offset = page * kPage;
    const uint8_t* data = base + offset;
    if (AllZero(data)) continue;
    WriteAt(fd, data, kPage, offset, name);
    crc = AddPage(crc, offset, data);
  }
  CheckSys(fsync(fd), "fsync", name);
  return crc;
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
      ReadAt(fd, page.data(), kPage, offset, path);
      if (!AllZero(page.data())) crc = AddPage(crc, offset, page.data());
    }
    at = end;
  }
  return crc;
}

}  // namespace vmm::snapshot
