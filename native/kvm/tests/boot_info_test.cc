// What the kernel is handed at entry: the zero page (64-bit boot protocol) or hvm_start_info
// (PVH), with the command line, initrd and e820 map. Offsets are read raw, from boot.rst and
// xen/include/public/arch-x86/hvm/start_info.h, not through the VMM's own structs.
#include <asm/bootparam.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/e820.h"
#include "arch/x86_64/gdt.h"
#include "error.h"
#include "tests/check.h"
#include "vstate/memory.h"

using vmm::GuestMemory;
using vmm::loader::InitrdPlacement;
using vmm::loader::KernelFormat;
using vmm::loader::KernelImage;

namespace {
constexpr uint64_t kMiB = 1 << 20;

template <typename T>
T Get(const GuestMemory& mem, uint64_t addr) {
  T v{};
  if (const uint8_t* p = mem.Slice(addr, sizeof v)) std::memcpy(&v, p, sizeof v);
  return v;
}

KernelImage BzKernel() {
  KernelImage k{};
  k.format = KernelFormat::kBzImage;
  k.mode = vmm::x86_64::CpuMode::kLong64;
  k.entry_addr = 0x100200;
  k.cmdline_max = 255;
  // The header as a loader copied it: 0x1f1 up to 0x268, with a recognisable version.
  setup_header hdr{};
  hdr.setup_sects = 27;
  hdr.boot_flag = 0xaa55;
  hdr.header = 0x53726448;
  hdr.version = 0x020f;
  hdr.type_of_loader = 0x12;  // must be overwritten
  hdr.init_size = 0x1234000;
  k.setup_header.resize(0x268 - 0x1f1);
  std::memcpy(k.setup_header.data(), &hdr, k.setup_header.size());
  return k;
}

KernelImage PvhKernel() {
  KernelImage k{};
  k.format = KernelFormat::kElfPvh;
  k.mode = vmm::x86_64::CpuMode::kProtected32;
  k.entry_addr = 0x1000120;
  k.cmdline_max = 2047;
  return k;
}
}  // namespace

TEST(e820_map) {
  GuestMemory mem(128 * kMiB);
  auto map = vmm::x86_64::MemoryMap(mem);
  CHECK_EQ(map.size(), size_t{3});
  if (map.size() != 3) return;
  CHECK(map[0].addr == 0 && map[0].size == 0x9fc00 && map[0].type == 1);
  CHECK(map[1].addr == 0x9fc00 && map[1].size == 0x100000 - 0x9fc00 && map[1].type == 2);
  CHECK(map[2].addr == 0x100000 && map[2].size == 128 * kMiB - 0x100000 && map[2].type == 1);

  GuestMemory big(0xc0000000 + 32 * kMiB);
  map = vmm::x86_64::MemoryMap(big);
  CHECK_EQ(map.size(), size_t{4});
  if (map.size() != 4) return;
  CHECK(map[2].addr == 0x100000 && map[2].size == 0xc0000000 - 0x100000);
  CHECK(map[3].addr == 0x100000000 && map[3].size == 32 * kMiB && map[3].type == 1);
}

TEST(boot_info_zero_page) {
  GuestMemory mem(128 * kMiB);
  const std::string cmdline = "console=ttyS0 reboot=k panic=-1";
  const InitrdPlacement initrd{0x7f00000, 0x54321};
  uint64_t at = 0;
  CHECK_NOTHROW(at = vmm::x86_64::WriteBootInfo(mem, BzKernel(), cmdline, initrd));
  CHECK_EQ(at, uint64_t{0x7000});
  const uint64_t zp = 0x7000;
  CHECK_EQ(Get<uint8_t>(mem, zp + 0x210), uint8_t{0xff});  // type_of_loader
  CHECK_EQ(Get<uint32_t>(mem, zp + 0x228), uint32_t{0x20000});  // cmd_line_ptr
  CHECK_EQ(Get<uint32_t>(mem, zp + 0x238), uint32_t(cmdline.size()));  // cmdline_size
  CHECK_EQ(Get<uint32_t>(mem, zp + 0x218), uint32_t{0x7f00000});  // ramdisk_image
  CHECK_EQ(Get<uint32_t>(mem, zp + 0x21c), uint32_t{0x54321});    // ramdisk_size
  CHECK_EQ(Get<uint16_t>(mem, zp + 0x1fe), uint16_t{0xaa55});     // header bytes copied
  CHECK_EQ(Get<uint16_t>(mem, zp + 0x206), uint16_t{0x020f});
  CHECK_EQ(Get<uint8_t>(mem, zp + 0x1f1), uint8_t{27});
  CHECK_EQ(Get<uint32_t>(mem, zp + 0x260), uint32_t{0x1234000});   // init_size
  const uint8_t* line = mem.Slice(0x20000, cmdline.size() + 1);
  CHECK(line && std::memcmp(line, cmdline.c_str(), cmdline.size() + 1) == 0);  // with its NUL
  CHECK_EQ(Get<uint8_t>(mem, zp + 0x1e8), uint8_t{3});  // e820_entries
  const uint64_t e820 = zp + 0x2d0;                     // 20-byte entries
  CHECK(Get<uint64_t>(mem, e820) == 0 && Get<uint64_t>(mem, e820 + 8) == 0x9fc00 && Get<uint32_t>(mem, e820 + 16) == 1);
  CHECK(Get<uint64_t>(mem, e820 + 20) == 0x9fc00 && Get<uint64_t>(mem, e820 + 28) == 0x60400 &&
        Get<uint32_t>(mem, e820 + 36) == 2);
  CHECK(Get<uint64_t>(mem, e820 + 40) == 0x100000 && Get<uint64_t>(mem, e820 + 48) == 128 * kMiB - 0x100000 &&
        Get<uint32_t>(mem, e820 + 56) == 1);
  CHECK_EQ(Get<uint64_t>(mem, e820 + 60), uint64_t{0});  // no fourth entry
}

TEST(boot_info_zero_page_above_4g) {
  GuestMemory mem(0xc0000000 + 16 * kMiB);
  CHECK_NOTHROW(vmm::x86_64::WriteBootInfo(mem, BzKernel(), "", {}));
  CHECK_EQ(Get<uint8_t>(mem, 0x7000 + 0x1e8), uint8_t{4});
  CHECK_EQ(Get<uint64_t>(mem, 0x7000 + 0x2d0 + 60), uint64_t{0x100000000});
  CHECK_EQ(Get<uint64_t>(mem, 0x7000 + 0x2d0 + 68), 16 * kMiB);
  CHECK_EQ(Get<uint8_t>(mem, 0x20000), uint8_t{0});  // empty command line is just the NUL
  CHECK_EQ(Get<uint32_t>(mem, 0x7000 + 0x218), uint32_t{0});  // no initrd
}

TEST(boot_info_command_line_limits) {
  GuestMemory mem(64 * kMiB);
  CHECK_NOTHROW(vmm::x86_64::WriteBootInfo(mem, BzKernel(), std::string(255, 'x'), {}));
  CHECK_THROWS(vmm::x86_64::WriteBootInfo(mem, BzKernel(), std::string(256, 'x'), {}), vmm::VmmError,
               "at most 255");
  CHECK_NOTHROW(vmm::x86_64::WriteBootInfo(mem, PvhKernel(), std::string(2047, 'x'), {}));
  CHECK_THROWS(vmm::x86_64::WriteBootInfo(mem, PvhKernel(), std::string(2048, 'x'), {}), vmm::VmmError,
               "at most 2047");
  KernelImage huge = BzKernel();
  huge.cmdline_max = 0xffffffff;  // the header allows more than the VMM's buffer at 0x20000
  CHECK_THROWS(vmm::x86_64::WriteBootInfo(mem, huge, std::string(0x10000, 'x'), {}), vmm::VmmError, "command line");
  CHECK_THROWS(vmm::x86_64::WriteBootInfo(mem, BzKernel(), std::string("a\0b", 3), {}), vmm::VmmError, "NUL");
}

TEST(boot_info_pvh_start_info) {
  GuestMemory mem(128 * kMiB);
  const InitrdPlacement initrd{0x7e00000, 0x9000};
  uint64_t at = 0;
  CHECK_NOTHROW(at = vmm::x86_64::WriteBootInfo(mem, PvhKernel(), "console=hvc0", initrd));
  CHECK_EQ(at, uint64_t{0x6000});
  CHECK_EQ(Get<uint32_t>(mem, 0x6000), uint32_t{0x336ec578});  // magic
  CHECK_EQ(Get<uint32_t>(mem, 0x6004), uint32_t{1});           // version
  CHECK_EQ(Get<uint32_t>(mem, 0x600c), uint32_t{1});           // nr_modules
  const uint64_t modlist = Get<uint64_t>(mem, 0x6010);
  CHECK_EQ(Get<uint64_t>(mem, 0x6018), uint64_t{0x20000});     // cmdline_paddr
  CHECK_EQ(Get<uint64_t>(mem, 0x6020), uint64_t{0});           // no RSDP
  const uint64_t memmap = Get<uint64_t>(mem, 0x6028);
  CHECK_EQ(Get<uint32_t>(mem, 0x6030), uint32_t{3});           // memmap_entries
  CHECK(modlist >= 0x6038 && modlist + 32 <= 0x7000);
  CHECK_EQ(Get<uint64_t>(mem, modlist), uint64_t{0x7e00000});  // module paddr
  CHECK_EQ(Get<uint64_t>(mem, modlist + 8), uint64_t{0x9000}); // size
  CHECK_EQ(Get<uint64_t>(mem, modlist + 16), uint64_t{0});     // no module command line
  CHECK(memmap >= 0x6038 && memmap + 3 * 24 <= 0x7000 && (memmap >= modlist + 32 || memmap + 72 <= modlist));
  // hvm_memmap_table_entry: addr, size, type, reserved (24 bytes).
  CHECK(Get<uint64_t>(mem, memmap) == 0 && Get<uint64_t>(mem, memmap + 8) == 0x9fc00 &&
        Get<uint32_t>(mem, memmap + 16) == 1);
  CHECK(Get<uint64_t>(mem, memmap + 24) == 0x9fc00 && Get<uint32_t>(mem, memmap + 40) == 2);
  CHECK(Get<uint64_t>(mem, memmap + 48) == 0x100000 && Get<uint64_t>(mem, memmap + 56) == 128 * kMiB - 0x100000 &&
        Get<uint32_t>(mem, memmap + 64) == 1);
  const uint8_t* line = mem.Slice(0x20000, 13);
  CHECK(line && std::memcmp(line, "console=hvc0", 13) == 0);
  CHECK_EQ(Get<uint8_t>(mem, 0x7000 + 0x210), uint8_t{0});  // no zero page for PVH
}

TEST(boot_info_pvh_without_initrd) {
  GuestMemory mem(0xc0000000 + 16 * kMiB);
  CHECK_NOTHROW(vmm::x86_64::WriteBootInfo(mem, PvhKernel(), "", {}));
  CHECK_EQ(Get<uint32_t>(mem, 0x600c), uint32_t{0});  // nr_modules
  CHECK_EQ(Get<uint32_t>(mem, 0x6030), uint32_t{4});  // memmap_entries: high RAM too
  const uint64_t memmap = Get<uint64_t>(mem, 0x6028);
  CHECK(memmap >= 0x6038 && memmap + 4 * 24 <= 0x7000);
  CHECK_EQ(Get<uint64_t>(mem, memmap + 72), uint64_t{0x100000000});
  CHECK_EQ(Get<uint64_t>(mem, memmap + 80), 16 * kMiB);
}

TEST(gdt_segments) {
  GuestMemory mem(64 * kMiB);
  kvm_sregs s{};
  vmm::x86_64::SetupSegments(mem, vmm::x86_64::CpuMode::kLong64, s);
  CHECK_EQ(s.gdt.base, uint64_t{0x500});
  CHECK_EQ(s.gdt.limit, uint16_t{31});
  CHECK_EQ(Get<uint64_t>(mem, 0x500), uint64_t{0});
  CHECK_EQ(Get<uint64_t>(mem, 0x508), uint64_t{0x00af9b000000ffff});  // 64-bit code
  CHECK_EQ(Get<uint64_t>(mem, 0x510), uint64_t{0x00cf93000000ffff});  // flat data
  CHECK_EQ(Get<uint64_t>(mem, 0x518), uint64_t{0x008f8b000000ffff});  // busy TSS
  CHECK(s.cs.selector == 0x08 && s.cs.l == 1 && s.cs.db == 0 && s.cs.type == 0xb && s.cs.present == 1 &&
        s.cs.s == 1 && s.cs.g == 1 && s.cs.limit == 0xffffffff && s.cs.base == 0 && s.cs.unusable == 0);
  CHECK(s.ds.selector == 0x10 && s.ds.type == 3 && s.ds.db == 1 && s.ds.limit == 0xffffffff);
  CHECK(s.ss.selector == 0x10 && s.es.selector == 0x10 && s.fs.selector == 0x10 && s.gs.selector == 0x10);
  CHECK(s.tr.selector == 0x18 && s.tr.type == 0xb && s.tr.s == 0 && s.tr.present == 1);
  CHECK_EQ(s.idt.base, uint64_t{0x520});
  CHECK_EQ(s.idt.limit, uint16_t{7});

  kvm_sregs p{};
  vmm::x86_64::SetupSegments(mem, vmm::x86_64::CpuMode::kProtected32, p);
  CHECK_EQ(Get<uint64_t>(mem, 0x508), uint64_t{0x00cf9b000000ffff});  // 32-bit code
  CHECK(p.cs.l == 0 && p.cs.db == 1 && p.cs.limit == 0xffffffff);
}
