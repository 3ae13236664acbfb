#include "arch/x86_64/boot_info.h"

#include <asm/bootparam.h>

#include <cstring>
#include <vector>

#include "arch/x86_64/e820.h"
#include "arch/x86_64/layout.h"
#include "error.h"

namespace vmm::x86_64 {

namespace {
constexpr uint8_t kLoaderUndefined = 0xff;  // boot.rst: type_of_loader for a loader without an id

// xen/include/public/arch-x86/hvm/start_info.h
constexpr uint32_t kPvhMagic = 0x336ec578;
struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};

uint64_t WriteZeroPage(GuestMemory& memory, const loader::KernelImage& kernel, uint64_t cmdline_len,
                       const loader::InitrdPlacement& initrd) {
  boot_params params{};
  std::memcpy(reinterpret_cast<uint8_t*>(&params) + offsetof(boot_params, hdr), kernel.setup_header.data(),
              kernel.setup_header.size());
  params.hdr.type_of_loader = kLoaderUndefined;
  params.hdr.cmd_line_ptr = layout::kCmdline;
  params.hdr.cmdline_size = cmdline_len;
  params.hdr.ramdisk_image = initrd.addr;
  params.hdr.ramdisk_size = initrd.size;
  std::vector<E820Entry> map = MemoryMap(memory);
  for (size_t i = 0; i < map.size(); ++i) {
    params.e820_table[i] = {map[i].addr, map[i].size, map[i].type};
  }
  params.e820_entries = map.size();
  memory.WriteObject(layout::kZeroPage, params, "zero page");
  return layout::kZeroPage;
}

uint64_t WritePvhStartInfo(GuestMemory& memory, const loader::InitrdPlacement& initrd) {
  HvmStartInfo info{};
  info.magic = kPvhMagic;
  info.version = 1;
  info.cmdline_paddr = layout::kCmdline;
  uint64_t next = layout::kPvhStartInfo + sizeof info;
  if (initrd.size) {
    HvmModlistEntry module{initrd.addr, initrd.size, 0, 0};
    memory.WriteObject(next, module, "PVH module list");
    info.nr_modules = 1;
    info.modlist_paddr = next;
    next += sizeof module;
  }
  std::vector<E820Entry> map = MemoryMap(memory);
  info.memmap_paddr = next;
  info.memmap_entries = map.size();
  for (const E820Entry& e : map) {
    memory.WriteObject(next, HvmMemmapEntry{e.addr, e.size, e.type, 0}, "PVH memory map");
    next += sizeof(HvmMemmapEntry);
  }
  if (next > layout::kZeroPage) throw VmmError("PVH start info overflows its page");
  memory.WriteObject(layout::kPvhStartInfo, info, "PVH start info");
  return layout::kPvhStartInfo;
}
}  // namespace

uint64_t WriteBootInfo(GuestMemory& memory, const loader::KernelImage& kernel, const std::string& cmdline,
                       const loader::InitrdPlacement& initrd) {
  if (cmdline.size() > kernel.cmdline_max || cmdline.size() >= layout::kCmdlineMax) {
    throw VmmError("kernel command line is " + std::to_string(cmdline.size()) + " bytes; this kernel takes at most " +
                   std::to_string(kernel.cmdline_max));
  }
  if (cmdline.find('\0') != std::string::npos) throw VmmError("kernel command line contains a NUL byte");
  memory.Write(layout::kCmdline, cmdline.c_str(), cmdline.size() + 1, "kernel command line");
  return kernel.format == loader::KernelFormat::kBzImage ? WriteZeroPage(memory, kernel, cmdline.size(), initrd)
                                                         : WritePvhStartInfo(memory, initrd);
}

}  // namespace vmm::x86_64
