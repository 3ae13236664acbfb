// The kernel loaders, on synthetic images written to temp files: a bzImage through the 64-bit
// boot protocol, an ELF vmlinux through its PVH note, and everything they must refuse.
#include <asm/bootparam.h>
#include <elf.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "error.h"
#include "loader/initrd.h"
#include "loader/kernel.h"
#include "tests/check.h"
#include "vstate/memory.h"

using vmm::GuestMemory;
using vmm::VmmError;
using vmm::loader::KernelFormat;
using vmm::loader::KernelImage;
using vmm::loader::LoadKernel;

namespace {
constexpr uint64_t kMiB = 1 << 20;

// A file in $TMPDIR, removed when it goes out of scope.
struct TempFile {
  std::string path;
  explicit TempFile(const std::vector<uint8_t>& bytes) {
    const char* dir = std::getenv("TMPDIR");
    path = std::string(dir && *dir ? dir : "/tmp") + "/vmm-unit-XXXXXX";
    int fd = mkstemp(path.data());
    if (fd < 0) return;
    (void)!write(fd, bytes.data(), bytes.size());
    close(fd);
  }
  ~TempFile() { unlink(path.c_str()); }
};

template <typename T>
void Put(std::vector<uint8_t>& buf, size_t at, const T& v) {
  if (buf.size() < at + sizeof v) buf.resize(at + sizeof v);
  std::memcpy(buf.data() + at, &v, sizeof v);
}

struct BzOptions {
  uint16_t version = 0x020f;
  uint16_t xloadflags = XLF_KERNEL_64;
  uint8_t loadflags = LOADED_HIGH;
  uint8_t setup_sects = 3;
  uint32_t init_size = 4 * kMiB;
  uint64_t pref_address = 0x1000000;
  uint32_t payload = 8192;
};

// The setup sectors hold the header at 0x1f1; the protected-mode part follows them.
std::vector<uint8_t> BzImage(const BzOptions& o) {
  const size_t pm_offset = (size_t(o.setup_sects) + 1) * 512;
  std::vector<uint8_t> buf(pm_offset + o.payload, 0);
  setup_header hdr{};
  hdr.setup_sects = o.setup_sects;
  hdr.boot_flag = 0xaa55;
  hdr.jump = 0x66eb;  // "jmp short +0x66": the header ends at 0x268
  hdr.header = 0x53726448;
  hdr.version = o.version;
  hdr.loadflags = o.loadflags;
  hdr.initrd_addr_max = 0x7fffffff;
  hdr.kernel_alignment = 0x200000;
  hdr.relocatable_kernel = 1;
  hdr.xloadflags = o.xloadflags;
  hdr.cmdline_size = 2047;
  hdr.pref_address = o.pref_address;
  hdr.init_size = o.init_size;
  Put(buf, offsetof(boot_params, hdr), hdr);
  for (size_t i = pm_offset; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 7 + 3);
  return buf;
}

struct ElfOptions {
  bool pvh_note = true;
  uint32_t note_desc_size = 4;
  uint64_t paddr = 0x1000000;
  uint64_t filesz = 0x300;
  uint64_t memsz = 0x2000;
  uint16_t machine = EM_X86_64;
};

constexpr uint64_t kPvhEntry = 0x1000120;

// ELF header, two program headers (PT_NOTE, PT_LOAD), a GNU note then the Xen PHYS32_ENTRY note,
// and the segment's bytes.
std::vector<uint8_t> Elf(const ElfOptions& o) {
  std::vector<uint8_t> buf(0x200, 0);
  std::vector<uint8_t> notes;
  auto note = [&](const char* name, uint32_t type, const void* desc, uint32_t descsz) {
    const Elf64_Nhdr nh{static_cast<Elf64_Word>(std::strlen(name) + 1), descsz, type};
    const size_t at = notes.size();
    const size_t name_at = at + sizeof nh;
    const size_t desc_at = name_at + ((nh.n_namesz + 3) & ~3u);
    notes.resize(desc_at + ((descsz + 3) & ~3u), 0);
    std::memcpy(notes.data() + at, &nh, sizeof nh);
    std::memcpy(notes.data() + name_at, name, nh.n_namesz);
    std::memcpy(notes.data() + desc_at, desc, descsz);
  };
  const uint8_t build_id[20] = {1, 2, 3};
  note("GNU", NT_GNU_BUILD_ID, build_id, sizeof build_id);
  const uint64_t entry = kPvhEntry;
  if (o.pvh_note) note("Xen", 18, &entry, o.note_desc_size);
  const uint32_t other = 0x1234;
  note("Xen", 17, &other, 4);  // another Xen note after it

  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = o.machine;
  eh.e_version = EV_CURRENT;
  eh.e_entry = 0xffffffff81000000;
  eh.e_phoff = sizeof eh;
  eh.e_ehsize = sizeof eh;
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 2;
  Put(buf, 0, eh);

  const uint64_t notes_at = sizeof eh + 2 * sizeof(Elf64_Phdr);
  Elf64_Phdr note_ph{};
  note_ph.p_type = PT_NOTE;
  note_ph.p_offset = notes_at;
  note_ph.p_filesz = notes.size();
  Put(buf, sizeof eh, note_ph);
  std::memcpy(buf.data() + notes_at, notes.data(), notes.size());  // fits below 0x200

  const uint64_t load_at = 0x1000;
  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_flags = PF_R | PF_X;
  load.p_offset = load_at;
  load.p_vaddr = 0xffffffff81000000;
  load.p_paddr = o.paddr;
  load.p_filesz = o.filesz;
  load.p_memsz = o.memsz;
  load.p_align = 0x1000;
  Put(buf, sizeof eh + sizeof(Elf64_Phdr), load);
  buf.resize(load_at + o.filesz);
  for (uint64_t i = 0; i < o.filesz; ++i) buf[load_at + i] = static_cast<uint8_t>(0xa0 + i);
  return buf;
}
}  // namespace

TEST(loader_bzimage) {
  BzOptions o;
  const std::vector<uint8_t> bytes = BzImage(o);
  TempFile f(bytes);
  GuestMemory mem(128 * kMiB);
  KernelImage k{};
  CHECK_NOTHROW(k = LoadKernel(f.path, mem));
  CHECK(k.format == KernelFormat::kBzImage);
  CHECK(k.mode == vmm::x86_64::CpuMode::kLong64);
  CHECK_EQ(k.entry_addr, uint64_t{0x100200});
  CHECK_EQ(k.end, uint64_t{0x1000000 + 4 * kMiB});  // pref_address + init_size
  CHECK_EQ(k.cmdline_max, uint64_t{2047});
  CHECK_EQ(k.initrd_addr_max, uint64_t{0x7fffffff});
  const size_t pm_offset = (o.setup_sects + 1) * 512;
  const uint8_t* loaded = mem.Slice(0x100000, o.payload);
  CHECK(loaded && std::memcmp(loaded, bytes.data() + pm_offset, o.payload) == 0);
  CHECK_EQ(*mem.Slice(0x100000 + o.payload, 1), uint8_t{0});  // nothing more
  CHECK_EQ(k.setup_header.size(), size_t{0x268 - 0x1f1});
  CHECK(std::memcmp(k.setup_header.data(), bytes.data() + 0x1f1, k.setup_header.size()) == 0);

  // setup_sects 0 means 4 (very old kernels leave it 0).
  o.setup_sects = 4;
  std::vector<uint8_t> four = BzImage(o);
  four[0x1f1] = 0;
  TempFile f0(four);
  GuestMemory mem0(128 * kMiB);
  CHECK_NOTHROW(LoadKernel(f0.path, mem0));
  CHECK(std::memcmp(mem0.Slice(0x100000, o.payload), four.data() + 5 * 512, o.payload) == 0);
}

TEST(loader_bzimage_refusals) {
  GuestMemory mem(128 * kMiB);
  BzOptions old;
  old.version = 0x020b;
  TempFile f_old(BzImage(old));
  CHECK_THROWS(LoadKernel(f_old.path, mem), VmmError, "without a 64-bit entry");

  BzOptions no64;
  no64.xloadflags = 0;
  TempFile f_no64(BzImage(no64));
  CHECK_THROWS(LoadKernel(f_no64.path, mem), VmmError, "without a 64-bit entry");

  BzOptions low;
  low.loadflags = 0;
  TempFile f_low(BzImage(low));
  CHECK_THROWS(LoadKernel(f_low.path, mem), VmmError, "must load low");

  BzOptions big;
  big.init_size = 200 * kMiB;
  TempFile f_big(BzImage(big));
  CHECK_THROWS(LoadKernel(f_big.path, mem), VmmError, "is too small for kernel");

  BzOptions empty;
  empty.payload = 0;
  TempFile f_empty(BzImage(empty));
  CHECK_THROWS(LoadKernel(f_empty.path, mem), VmmError, "truncated");
}

TEST(loader_refuses_other_files) {
  GuestMemory mem(64 * kMiB);
  std::vector<uint8_t> noise(16384);
  uint32_t x = 0x12345678;
  for (uint8_t& b : noise) b = static_cast<uint8_t>((x = x * 1103515245 + 12345) >> 16);
  noise[0] = 0;  // not "\x7fELF"
  TempFile f(noise);
  CHECK_THROWS(LoadKernel(f.path, mem), VmmError, "is not a Linux kernel");
  TempFile tiny(std::vector<uint8_t>{0x7f});
  CHECK_THROWS(LoadKernel(tiny.path, mem), VmmError, "is not a Linux kernel");
  CHECK_THROWS(LoadKernel("/nonexistent/vmlinux", mem), VmmError, "kernel /nonexistent/vmlinux");
  CHECK_THROWS(LoadKernel("/tmp", mem), VmmError, "not a regular file");
}

TEST(loader_elf_pvh) {
  ElfOptions o;
  TempFile f(Elf(o));
  GuestMemory mem(64 * kMiB);
  std::memset(mem.Slice(0x1000000, 0x2000), 0xcc, 0x2000);  // the bss must be zeroed
  KernelImage k{};
  CHECK_NOTHROW(k = LoadKernel(f.path, mem));
  CHECK(k.format == KernelFormat::kElfPvh);
  CHECK(k.mode == vmm::x86_64::CpuMode::kProtected32);
  CHECK_EQ(k.entry_addr, kPvhEntry);
  CHECK_EQ(k.end, uint64_t{0x1002000});
  CHECK_EQ(k.cmdline_max, uint64_t{2047});
  CHECK_EQ(k.initrd_addr_max, uint64_t{64 * kMiB});
  CHECK(k.setup_header.empty());
  const uint8_t* seg = mem.Slice(0x1000000, 0x2000);
  CHECK(seg[0] == 0xa0 && seg[1] == 0xa1 && seg[0x2ff] == static_cast<uint8_t>(0xa0 + 0x2ff));
  bool bss_zero = true;
  for (uint64_t i = 0x300; i < 0x2000; ++i) bss_zero = bss_zero && seg[i] == 0;
  CHECK(bss_zero);

  ElfOptions wide;
  wide.note_desc_size = 8;  // a 64-bit descriptor is read whole
  TempFile f8(Elf(wide));
  GuestMemory mem8(64 * kMiB);
  CHECK_NOTHROW(k = LoadKernel(f8.path, mem8));
  CHECK_EQ(k.entry_addr, kPvhEntry);
}

TEST(loader_elf_refusals) {
  GuestMemory mem(64 * kMiB);
  ElfOptions no_note;
  no_note.pvh_note = false;
  TempFile f_nonote(Elf(no_note));
  CHECK_THROWS(LoadKernel(f_nonote.path, mem), VmmError, "no PVH entry note");

  ElfOptions arm;
  arm.machine = EM_AARCH64;
  TempFile f_arm(Elf(arm));
  CHECK_THROWS(LoadKernel(f_arm.path, mem), VmmError, "not an x86_64 vmlinux");

  GuestMemory small(16 * kMiB);  // the segment at 16 MiB is past the end
  ElfOptions o;
  TempFile f(Elf(o));
  CHECK_THROWS(LoadKernel(f.path, small), VmmError, "is too small for kernel");

  ElfOptions straddle;
  straddle.paddr = 64 * kMiB - 0x1000;  // starts inside RAM, ends outside
  TempFile f_straddle(Elf(straddle));
  CHECK_THROWS(LoadKernel(f_straddle.path, mem), VmmError, "is too small for kernel");

  ElfOptions wrap;
  wrap.paddr = UINT64_MAX - 0xfff;  // paddr + memsz wraps around
  TempFile f_wrap(Elf(wrap));
  CHECK_THROWS(LoadKernel(f_wrap.path, mem), VmmError, "is too small for kernel");

  ElfOptions low;
  low.paddr = 0x8000;  // over the boot structures below 1 MiB
  TempFile f_low(Elf(low));
  CHECK_THROWS(LoadKernel(f_low.path, mem), VmmError, "has a malformed segment");

  ElfOptions bad_sizes;
  bad_sizes.memsz = 0x100;  // filesz > memsz
  TempFile f_bad(Elf(bad_sizes));
  CHECK_THROWS(LoadKernel(f_bad.path, mem), VmmError, "has a malformed segment");

  std::vector<uint8_t> cut = Elf(o);
  cut.resize(0x1000 + 0x100);  // the segment's bytes end early
  TempFile f_cut(cut);
  CHECK_THROWS(LoadKernel(f_cut.path, mem), VmmError, "truncated");
}

TEST(loader_initrd) {
  GuestMemory mem(64 * kMiB);
  KernelImage k{};
  k.end = 0x1400000;
  k.initrd_addr_max = 0x7fffffff;
  std::vector<uint8_t> bytes(10000);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i);
  TempFile f(bytes);
  vmm::loader::InitrdPlacement p{};
  p = vmm::loader::LoadInitrd(f.path, k, mem);  // an exception fails the test
  CHECK_EQ(p.size, uint64_t{10000});
  CHECK_EQ(p.addr % 4096, uint64_t{0});
  CHECK(p.addr >= k.end && p.addr + p.size <= 64 * kMiB && p.addr + p.size + 4096 > 64 * kMiB);
  CHECK(std::memcmp(mem.Slice(p.addr, p.size), bytes.data(), p.size) == 0);

  k.initrd_addr_max = 32 * kMiB - 1;  // the kernel's limit is below the top of RAM
  p = vmm::loader::LoadInitrd(f.path, k, mem);  // an exception fails the test
  CHECK(p.addr + p.size <= 32 * kMiB && p.addr >= k.end);

  k.end = 64 * kMiB - 4096;  // no room above the kernel
  k.initrd_addr_max = 0x7fffffff;
  CHECK_THROWS(vmm::loader::LoadInitrd(f.path, k, mem), VmmError, "too small for kernel and initrd");
}

// The guest kernel that images/kernel/build.sh builds, when the caller names its directory
// (test/unit/native.test.ts does when it has been built). The synthetic tests above are the
// required ones; this only adds checks.
TEST(loader_real_kernel) {
  const char* dir = std::getenv("VMM_TEST_KERNEL_DIR");
  if (!dir || !*dir) return;
  GuestMemory mem(128 * kMiB);
  KernelImage k{};
  CHECK_NOTHROW(k = LoadKernel(std::string(dir) + "/bzImage", mem));
  CHECK(k.format == KernelFormat::kBzImage);
  CHECK_EQ(k.entry_addr, uint64_t{0x100200});
  CHECK(k.end > 0x100000 && k.end <= 128 * kMiB);
  CHECK(k.setup_header.size() > 0x60);
  GuestMemory mem2(128 * kMiB);
  CHECK_NOTHROW(k = LoadKernel(std::string(dir) + "/vmlinux", mem2));
  CHECK(k.format == KernelFormat::kElfPvh);
  CHECK(k.entry_addr >= 0x1000000 && k.entry_addr < k.end);
}
