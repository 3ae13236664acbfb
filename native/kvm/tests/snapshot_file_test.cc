// The snapshot state file and the state it carries: a file that changed in any byte, lost its
// tail, came from another format or was taken for another configuration is refused with a
// one-line error that says what to do; what is encoded decodes to the same bytes. The memory
// file: sparse, checksummed, mapped back copy-on-write.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "snapshot/crc64.h"
#include "snapshot/memory_file.h"
#include "snapshot/snapshot_file.h"
#include "tests/check.h"
#include "vstate/memory.h"
#include "vstate/vcpu_state.h"
#include "vstate/vm_state.h"

using namespace vmm::snapshot;

namespace {
StateFile Sample() {
  StateFile s;
  s.fingerprint = "vmrun 1; kernel abc; 2 vCPUs; 256 MiB";
  s.sections.push_back({1, {1, 2, 3}});
  s.sections.push_back({2, std::vector<uint8_t>(1000, 0x5a)});
  s.sections.push_back({2, {}});
  return s;
}

vmm::VcpuState SampleVcpu() {
  vmm::VcpuState v;
  v.regs.rip = 0x1234;
  v.regs.rax = 42;
  v.sregs.cr0 = 0x80000011;
  v.xsave.assign(sizeof(kvm_xsave), 0);
  v.xsave[512] = 7;
  v.xcrs.nr_xcrs = 1;
  v.lapic.regs[0x20] = 1;
  v.tsc_khz = 2000000;
  v.cpuid.resize(3);
  v.cpuid[1].function = 0x80000001;
  v.msrs.push_back({0x10, 0, 999});
  v.msrs.push_back({0x6e0, 0, 1000});
  v.events.exception.injected = 1;
  return v;
}
}  // namespace

TEST(snapshot_crc64_is_xz_check) {
  const char text[] = "123456789";
  CHECK_EQ(Crc64(reinterpret_cast<const uint8_t*>(text), 9), uint64_t{0x995dc9bbdf1939fa});
  // In pieces, the same.
  const uint64_t first = Crc64(reinterpret_cast<const uint8_t*>(text), 4);
  CHECK_EQ(Crc64(reinterpret_cast<const uint8_t*>(text) + 4, 5, first), uint64_t{0x995dc9bbdf1939fa});
}

// Eight bytes at a time must give what one bit at a time gives, at every length and alignment.
TEST(snapshot_crc64_matches_the_bitwise_definition) {
  std::vector<uint8_t> data(1021);
  uint64_t seed = 0x9e3779b97f4a7c15;
  for (uint8_t& b : data) b = static_cast<uint8_t>((seed = seed * 6364136223846793005u + 1442695040888963407u) >> 56);
  auto bitwise = [](const uint8_t* p, size_t n) {
    uint64_t crc = ~uint64_t{0};
    for (size_t i = 0; i < n; ++i) {
      crc ^= p[i];
      for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? 0xc96c5795d7870f42 : 0);
    }
    return ~crc;
  };
  bool all_equal = true;
  for (size_t start = 0; start < 9; ++start) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{63}, size_t{1000}}) {
      all_equal = all_equal && Crc64(data.data() + start, n) == bitwise(data.data() + start, n);
    }
  }
  CHECK(all_equal);
}

TEST(snapshot_state_file_round_trip) {
  const StateFile in = Sample();
  const std::vector<uint8_t> bytes = EncodeStateFile(in);
  const StateFile out = DecodeStateFile(bytes.data(), bytes.size(), in.fingerprint, "F");
  CHECK_EQ(out.fingerprint, in.fingerprint);
  CHECK_EQ(out.sections.size(), size_t{3});
  CHECK(out.Only(1, "F") == in.sections[0].bytes);
  CHECK_EQ(out.All(2).size(), size_t{2});
  CHECK(out.All(2)[0]->bytes == in.sections[1].bytes);
  CHECK(out.All(2)[1]->bytes.empty());
  CHECK_THROWS(out.Only(2, "F"), SnapshotError, "has 2 sections tagged 2 where it needs one");
  CHECK_THROWS(out.Only(9, "F"), SnapshotError, "has 0 sections tagged 9");
}

TEST(snapshot_state_file_refuses_any_changed_byte) {
  const StateFile in = Sample();
  const std::vector<uint8_t> bytes = EncodeStateFile(in);
  int refused = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::vector<uint8_t> bad = bytes;
    bad[i] ^= 0x01;
    try {
      DecodeStateFile(bad.data(), bad.size(), in.fingerprint, "F");
    } catch (const SnapshotError& e) {
      if (std::strstr(e.what(), "delete it and vmrun takes a new snapshot")) ++refused;
    }
  }
  CHECK_EQ(refused, static_cast<int>(bytes.size()));
}

TEST(snapshot_state_file_refuses_every_truncation) {
  const StateFile in = Sample();
  const std::vector<uint8_t> bytes = EncodeStateFile(in);
  int refused = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    try {
      DecodeStateFile(bytes.data(), n, in.fingerprint, "F");
    } catch (const SnapshotError&) {
      ++refused;
    }
  }
  CHECK_EQ(refused, static_cast<int>(bytes.size()));
}

TEST(snapshot_state_file_refuses_other_versions_and_configurations) {
  const StateFile in = Sample();
  std::vector<uint8_t> bytes = EncodeStateFile(in);
  CHECK_THROWS(DecodeStateFile(bytes.data(), bytes.size(), "vmrun 1; kernel def; 2 vCPUs; 256 MiB", "/c/snap"), SnapshotError,
               "the snapshot /c/snap was taken for vmrun 1; kernel abc; 2 vCPUs; 256 MiB, not for this run's vmrun 1; kernel def");
  bytes[8] = 2;  // the version; the checksum is not what refuses it
  CHECK_THROWS(DecodeStateFile(bytes.data(), bytes.size(), in.fingerprint, "F"), SnapshotError,
               "has format version 2, and this vmrun reads version 1: delete it");
  const char junk[] = "#!/bin/sh\necho not a snapshot\n";
  CHECK_THROWS(DecodeStateFile(reinterpret_cast<const uint8_t*>(junk), sizeof junk, in.fingerprint, "F"), SnapshotError,
               "is not a vmrun snapshot");
}

TEST(snapshot_state_file_written_whole_or_not_at_all) {
  char dir[] = "/tmp/vmrun-snapshot-test-XXXXXX";
  CHECK(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/state";
  const std::vector<uint8_t> bytes = EncodeStateFile(Sample());
  WriteFileAtomically(path, bytes);
  CHECK(ReadWholeFile(path, 1 << 20) == bytes);
  CHECK_THROWS(ReadWholeFile(path, 10), SnapshotError, "is not a file of at most 10 bytes");
  // Nothing but the file itself is left beside it.
  CHECK_EQ(unlink(path.c_str()), 0);
  CHECK_EQ(rmdir(dir), 0);
  CHECK_THROWS(WriteFileAtomically(std::string(dir) + "/state", bytes), vmm::SysError, "open");
}

TEST(snapshot_vcpu_state_round_trip_and_bounds) {
  const vmm::VcpuState in = SampleVcpu();
  const std::vector<uint8_t> bytes = vmm::EncodeVcpuState(in);
  const vmm::VcpuState out = vmm::DecodeVcpuState(bytes, "vCPU 0");
  CHECK(vmm::EncodeVcpuState(out) == bytes);
  CHECK_EQ(out.regs.rip, uint64_t{0x1234});
  CHECK_EQ(out.msrs.size(), size_t{2});
  CHECK_EQ(out.msrs[1].data, uint64_t{1000});
  CHECK_EQ(out.cpuid[1].function, uint32_t{0x80000001});
  for (size_t n : {size_t{0}, bytes.size() / 2, bytes.size() - 1}) {
    CHECK_THROWS(vmm::DecodeVcpuState(std::vector<uint8_t>(bytes.begin(), bytes.begin() + n), "vCPU 0"), SnapshotError,
                 "vCPU 0 is truncated");
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  CHECK_THROWS(vmm::DecodeVcpuState(longer, "vCPU 0"), SnapshotError, "vCPU 0 has 1 bytes more than expected");
  vmm::VcpuState tiny = in;
  tiny.xsave.resize(16);
  CHECK_THROWS(vmm::DecodeVcpuState(vmm::EncodeVcpuState(tiny), "vCPU 0"), SnapshotError, "an XSAVE area of 16 bytes");
}

TEST(snapshot_vm_state_round_trip_and_chip_ids) {
  vmm::VmState in;
  in.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
  in.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
  in.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
  in.clock.clock = 123456789;
  const std::vector<uint8_t> bytes = vmm::EncodeVmState(in);
  CHECK_EQ(vmm::DecodeVmState(bytes, "the VM").clock.clock, uint64_t{123456789});
  vmm::VmState swapped = in;
  std::swap(swapped.pic_master.chip_id, swapped.ioapic.chip_id);
  CHECK_THROWS(vmm::DecodeVmState(vmm::EncodeVmState(swapped), "the VM"), SnapshotError, "names its interrupt controllers wrongly");
}

TEST(snapshot_memory_file_holds_touched_pages_and_maps_copy_on_write) {
  char dir[] = "/tmp/vmrun-snapshot-test-XXXXXX";
  CHECK(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/memory";
  const uint64_t size = 64 << 20;
  uint64_t crc = 0;
  {
    vmm::GuestMemory ram(size);
    ram.Write(0x1000, "first", 5, "test");
    ram.Write(size - 4096, "last", 4, "test");
    ram.Write(0x200000, std::vector<uint8_t>(4096, 0).data(), 4096, "test");  // touched, but zeros
    crc = WriteMemoryFile(ram, path);
  }
  struct stat st;
  CHECK_EQ(stat(path.c_str(), &st), 0);
  CHECK_EQ(static_cast<uint64_t>(st.st_size), size);
  CHECK_EQ(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{2 * 4096});  // two data pages, the rest holes
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  CHECK_EQ(MemoryFileChecksum(fd, size, path), crc);
  {
    vmm::GuestMemory restored(size, vmm::GuestMemory::Backing::kFile, fd);
    CHECK(std::memcmp(restored.Slice(0x1000, 5), "first", 5) == 0);
    CHECK(std::memcmp(restored.Slice(size - 4096, 4), "last", 4) == 0);
    restored.Write(0x1000, "FIRST", 5, "test");  // the guest's write stays in the mapping
  }
  CHECK_EQ(MemoryFileChecksum(fd, size, path), crc);
  // One byte changed on disk changes the checksum; a short file is refused outright.
  CHECK_EQ(pwrite(fd, "x", 1, size - 4096), 1);
  CHECK(MemoryFileChecksum(fd, size, path) != crc);
  CHECK_EQ(ftruncate(fd, size / 2), 0);
  CHECK_THROWS(MemoryFileChecksum(fd, size, path), SnapshotError, "is not a file of 67108864 bytes");
  CHECK_THROWS(vmm::GuestMemory(size, vmm::GuestMemory::Backing::kFile, fd), vmm::VmmError, "holds only 33554432 bytes");
  close(fd);
  unlink(path.c_str());
  rmdir(dir);
}
