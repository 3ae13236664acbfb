#include "vstate/memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <cstdio>
#include <string>
#include <unistd.h>

#include "arch/x86_64/layout.h"
#include "error.h"

namespace vmm {

GuestMemory::GuestMemory(uint64_t size_bytes, Backing backing, int file_fd) : size_(size_bytes) {
  // NORESERVE: guest RAM is backed lazily, so a VM costs only the pages its guest touches. The
  // guard after it costs address space only: a device bug that overruns RAM by up to 4 GiB (a
  // 32-bit length that wrapped) faults here instead of reaching the VMM's own memory.
  void* host = mmap(nullptr, size_bytes + kGuardBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (host == MAP_FAILED) throw SysError("mmap", errno, "guest memory of " + std::to_string(size_bytes) + " bytes");
  mapping_ = static_cast<uint8_t*>(host);
  const std::string what = "guest memory of " + std::to_string(size_bytes) + " bytes";
  try {
    if (backing == Backing::kSharedMemfd) {
      MapMemfd(what);
    } else if (backing == Backing::kFile) {
      MapFile(file_fd, what);
    } else {
      CheckSys(mprotect(host, size_bytes, PROT_READ | PROT_WRITE), "mprotect", what);
    }
  } catch (...) {
    munmap(host, size_bytes + kGuardBytes);
    throw;
  }
  uint64_t low = size_bytes < layout::kMmioHoleStart ? size_bytes : layout::kMmioHoleStart;
  regions_.push_back({0, low, mapping_});
  if (size_bytes > low) regions_.push_back({layout::kHighRamStart, size_bytes - low, mapping_ + low});
}

void GuestMemory::MapMemfd(const std::string& what) {
  memfd_ = Fd(CheckSys(memfd_create("vmrun-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING), "memfd_create", what));
  CheckSys(ftruncate(memfd_.get(), static_cast<off_t>(size_)), "ftruncate", what);
  // Sealed at its size: a back end that maps it cannot shrink it under the VMM (which would then
  // fault on the missing pages) nor grow it.
  CheckSys(fcntl(memfd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), "fcntl(F_ADD_SEALS)", what);
  void* at = mmap(mapping_, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, memfd_.get(), 0);
  if (at == MAP_FAILED) throw SysError("mmap", errno, what);
}

void GuestMemory::MapFile(int fd, const std::string& what) {
  // A file shorter than RAM would fault (SIGBUS) where it ends, at the guest's first touch there.
  struct stat st;
  CheckSys(fstat(fd, &st), "fstat", what);
  if (static_cast<uint64_t>(st.st_size) < size_) {
    throw VmmError("the memory file for " + what + " holds only " + std::to_string(st.st_size) + " bytes");
  }
  void* at = mmap(mapping_, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, 0);
  if (at == MAP_FAILED) throw SysError("mmap", errno, what);
}

GuestMemory::~GuestMemory() {
  if (mapping_) munmap(mapping_, size_ + kGuardBytes);
}

uint8_t* GuestMemory::Slice(uint64_t addr, uint64_t len) const {
  for (const MemoryRegion& r : regions_) {
    // Written so that no sum can overflow: addr and len come from the guest.
    if (addr >= r.guest_addr && addr - r.guest_addr <= r.size && len <= r.size - (addr - r.guest_addr)) {
      return r.host + (addr - r.guest_addr);
    }
  }
  return nullptr;
}

uint8_t* GuestMemory::SliceOrThrow(uint64_t addr, uint64_t len, const char* what) const {
  uint8_t* p = Slice(addr, len);
  if (!p) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s does not fit in guest memory (0x%llx + 0x%llx bytes, RAM is %llu MiB)", what,
                  (unsigned long long)addr, (unsigned long long)len, (unsigned long long)(size_ >> 20));
    throw VmmError(buf);
  }
  return p;
}

uint64_t GuestMemory::ResidentBytes() const {
  const long page = sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> vec((size_ + page - 1) / page);
  CheckSys(mincore(mapping_, size_, vec.data()), "mincore");
  uint64_t pages = 0;
  for (unsigned char v : vec) pages += v & 1;
  return pages * page;
}

}  // namespace vmm
