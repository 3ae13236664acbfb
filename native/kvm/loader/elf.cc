#include "loader/elf.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "arch/x86_64/layout.h"
#include "error.h"

namespace vmm::loader {

namespace {
constexpr uint32_t kXenElfnotePhys32Entry = 18;  // xen/include/public/elfnote.h
constexpr uint64_t kMaxNoteSegment = 1 << 16;
constexpr uint64_t kPvhCmdlineMax = 2047;        // x86 COMMAND_LINE_SIZE - 1

// Finds the PVH entry in one PT_NOTE segment; 0 if it has none.
uint64_t FindPvhEntry(const File& file, const Elf64_Phdr& note) {
  if (note.p_filesz > kMaxNoteSegment) return 0;
  std::vector<uint8_t> buf(note.p_filesz);
  if (!file.ReadAt(note.p_offset, buf.data(), buf.size())) return 0;
  size_t pos = 0;
  auto align4 = [](uint64_t n) { return (n + 3) & ~uint64_t{3}; };
  while (pos + sizeof(Elf64_Nhdr) <= buf.size()) {
    Elf64_Nhdr nh;
    std::memcpy(&nh, buf.data() + pos, sizeof nh);
    const size_t name_at = pos + sizeof nh;
    const size_t desc_at = name_at + align4(nh.n_namesz);
    if (desc_at > buf.size() || nh.n_descsz > buf.size() - desc_at) return 0;
    if (nh.n_type == kXenElfnotePhys32Entry && nh.n_namesz == 4 && std::memcmp(buf.data() + name_at, "Xen", 4) == 0) {
      uint64_t entry = 0;
      std::memcpy(&entry, buf.data() + desc_at, std::min<size_t>(nh.n_descsz, sizeof entry));
      return nh.n_descsz == 4 ? static_cast<uint32_t>(entry) : entry;
    }
    pos = desc_at + align4(nh.n_descsz);
  }
  return 0;
}
}  // namespace

bool IsElf(const File& file) {
  unsigned char ident[SELFMAG];
  return file.ReadAt(0, ident, SELFMAG) && std::memcmp(ident, ELFMAG, SELFMAG) == 0;
}

KernelImage LoadElfPvh(const File& file, GuestMemory& memory) {
  const std::string name = "kernel " + file.path();
  Elf64_Ehdr eh;
  if (!file.ReadAt(0, &eh, sizeof eh) || eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
      eh.e_phentsize != sizeof(Elf64_Phdr)) {
    throw VmmError(name + " is an ELF file but not an x86_64 vmlinux");
  }
  std::vector<Elf64_Phdr> phdrs(eh.e_phnum);
  if (!file.ReadAt(eh.e_phoff, phdrs.data(), phdrs.size() * sizeof(Elf64_Phdr))) throw VmmError(name + " is truncated");

  uint64_t entry = 0;
  for (const Elf64_Phdr& ph : phdrs) {
    if (ph.p_type == PT_NOTE && !entry) entry = FindPvhEntry(file, ph);
  }
  if (!entry) throw VmmError(name + " has no PVH entry note: build it with CONFIG_PVH=y, or boot its bzImage");

  uint64_t end = 0;
  for (const Elf64_Phdr& ph : phdrs) {
    if (ph.p_type != PT_LOAD) continue;
    if (ph.p_filesz > ph.p_memsz || ph.p_paddr < layout::kHighMemoryStart) {
      throw VmmError(name + " has a malformed segment (below 1 MiB, or larger in the file than in memory)");
    }
    if (!memory.Slice(ph.p_paddr, ph.p_memsz)) {
      throw VmmError("guest memory of " + std::to_string(memory.size() >> 20) + " MiB is too small for " + name +
                     " (a segment ends at " + std::to_string((ph.p_paddr + ph.p_memsz) >> 20) + " MiB)");
    }
    file.ReadIntoGuest(ph.p_offset, ph.p_filesz, memory, ph.p_paddr);
    std::memset(memory.Slice(ph.p_paddr + ph.p_filesz, ph.p_memsz - ph.p_filesz), 0, ph.p_memsz - ph.p_filesz);
    end = std::max(end, ph.p_paddr + ph.p_memsz);
  }

  KernelImage image;
  image.format = KernelFormat::kElfPvh;
  image.mode = x86_64::CpuMode::kProtected32;
  image.entry_addr = entry;
  image.end = end;
  image.initrd_addr_max = memory.low_end();
  image.cmdline_max = kPvhCmdlineMax;
  return image;
}

}  // namespace vmm::loader
