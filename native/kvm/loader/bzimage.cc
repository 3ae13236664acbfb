#include "loader/bzimage.h"

#include <asm/bootparam.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "arch/x86_64/layout.h"
#include "error.h"

namespace vmm::loader {

namespace {
// Offsets of the setup header fields in the file and in the zero page (boot.rst, "THE REAL-MODE
// KERNEL HEADER").
constexpr size_t kSetupHeaderStart = offsetof(boot_params, hdr);  // 0x1f1
constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint32_t kHeaderMagic = 0x53726448;  // "HdrS"
constexpr uint16_t kMinProtocol = 0x020c;      // 2.12: xloadflags and the 64-bit entry
constexpr uint64_t kEntry64Offset = 0x200;

setup_header ReadHeader(const File& file) {
  setup_header hdr{};
  if (!file.ReadAt(kSetupHeaderStart, &hdr, sizeof hdr)) std::memset(&hdr, 0, sizeof hdr);
  return hdr;
}
}  // namespace

bool IsBzImage(const File& file) {
  setup_header hdr = ReadHeader(file);
  return hdr.boot_flag == kBootFlag && hdr.header == kHeaderMagic;
}

KernelImage LoadBzImage(const File& file, GuestMemory& memory) {
  setup_header hdr = ReadHeader(file);
  const std::string name = "kernel " + file.path();
  if (hdr.version < kMinProtocol || !(hdr.xloadflags & XLF_KERNEL_64)) {
    throw VmmError(name + " is a bzImage without a 64-bit entry (boot protocol 2.12+ with XLF_KERNEL_64 needed)");
  }
  if (!(hdr.loadflags & LOADED_HIGH)) throw VmmError(name + " is a zImage that must load low; vmrun needs a bzImage");

  const uint64_t setup_sects = hdr.setup_sects ? hdr.setup_sects : 4;
  const uint64_t pm_offset = (setup_sects + 1) * 512;
  if (file.size() <= pm_offset) throw VmmError(name + " is truncated");

  // The decompressor runs at max(load address, pref_address) and needs init_size bytes there.
  const uint64_t run_addr = std::max<uint64_t>(layout::kHighMemoryStart, hdr.pref_address);
  const uint64_t end = run_addr + hdr.init_size;
  if (end > memory.low_end()) {
    throw VmmError("guest memory of " + std::to_string(memory.size() >> 20) + " MiB is too small for " + name +
                   ": it needs at least " + std::to_string((end >> 20) + 1) + " MiB");
  }
  file.ReadIntoGuest(pm_offset, file.size() - pm_offset, memory, layout::kHighMemoryStart);

  // The header ends at 0x202 + the byte at 0x201 (the jump's offset); copy exactly that much.
  const size_t header_end = std::min<size_t>(0x202 + reinterpret_cast<const uint8_t*>(&hdr)[0x201 - kSetupHeaderStart],
                                             kSetupHeaderStart + sizeof hdr);
  KernelImage image;
  image.format = KernelFormat::kBzImage;
  image.mode = x86_64::CpuMode::kLong64;
  image.entry_addr = layout::kHighMemoryStart + kEntry64Offset;
  image.end = end;
  image.initrd_addr_max = hdr.initrd_addr_max;
  image.cmdline_max = hdr.cmdline_size ? hdr.cmdline_size : 255;
  image.setup_header.resize(header_end - kSetupHeaderStart);
  std::memcpy(image.setup_header.data(), &hdr, image.setup_header.size());
  return image;
}

}  // namespace vmm::loader
