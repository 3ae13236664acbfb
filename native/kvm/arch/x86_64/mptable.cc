#include "arch/x86_64/mptable.h"

#include <cstring>
#include <vector>

#include "arch/x86_64/layout.h"
#include "error.h"

namespace vmm::x86_64 {

namespace {
#pragma pack(push, 1)
struct MpFloatingPointer {
  char signature[4];  // "_MP_"
  uint32_t config_table;
  uint8_t length;     // in 16-byte units
  uint8_t spec_rev;
  uint8_t checksum;
  uint8_t feature[5];
};
struct MpConfigHeader {
  char signature[4];  // "PCMP"
  uint16_t length;
  uint8_t spec_rev;
  uint8_t checksum;
  char oem[8];
  char product[12];
  uint32_t oem_table;
  uint16_t oem_size;
  uint16_t entry_count;
  uint32_t lapic_addr;
  uint16_t ext_length;
  uint8_t ext_checksum;
  uint8_t reserved;
};
struct MpProcessor {
  uint8_t type;
  uint8_t apic_id;
  uint8_t apic_version;
  uint8_t flags;
  uint32_t signature;
  uint32_t features;
  uint32_t reserved[2];
};
struct MpBus {
  uint8_t type;
  uint8_t bus_id;
  char bus_type[6];
};
struct MpIoApic {
  uint8_t type;
  uint8_t apic_id;
  uint8_t apic_version;
  uint8_t flags;
  uint32_t addr;
};
struct MpInterrupt {  // both the I/O (type 3) and local (type 4) interrupt entries
  uint8_t type;
  uint8_t irq_type;
  uint16_t irq_flags;
  uint8_t src_bus;
  uint8_t src_irq;
  uint8_t dst_apic;
  uint8_t dst_pin;
};
#pragma pack(pop)

constexpr uint8_t kEntryProcessor = 0, kEntryBus = 1, kEntryIoApic = 2, kEntryIoInterrupt = 3,
                  kEntryLocalInterrupt = 4;
constexpr uint8_t kIrqInt = 0, kIrqNmi = 1, kIrqExtInt = 3;
constexpr uint8_t kCpuEnabled = 1, kCpuBootProcessor = 2;
constexpr uint8_t kApicVersion = 0x14, kIoApicVersion = 0x11;
constexpr uint8_t kIsaBus = 0;
constexpr uint8_t kIoApicPins = 24;
constexpr uint32_t kCpuSignature = (6 << 8) | (1 << 4) | 1;  // family 6: any modern CPU
constexpr uint32_t kCpuFeatures = (1 << 0) | (1 << 9);        // FPU, APIC

uint8_t Checksum(const uint8_t* bytes, size_t len) {
  uint8_t sum = 0;
  for (size_t i = 0; i < len; ++i) sum += bytes[i];
  return static_cast<uint8_t>(-sum);
}

template <typename T>
void Append(std::vector<uint8_t>& out, const T& entry) {
  const auto* p = reinterpret_cast<const uint8_t*>(&entry);
  out.insert(out.end(), p, p + sizeof entry);
}
}  // namespace

void WriteMpTable(GuestMemory& memory, uint32_t vcpu_count) {
  if (vcpu_count == 0 || vcpu_count > kMpTableMaxCpus) {
    throw VmmError("the MP table describes 1 to " + std::to_string(kMpTableMaxCpus) + " vCPUs");
  }
  const uint8_t ioapic_id = static_cast<uint8_t>(vcpu_count + 1);

  std::vector<uint8_t> entries;
  uint16_t count = 0;
  for (uint32_t cpu = 0; cpu < vcpu_count; ++cpu, ++count) {
    MpProcessor p{};
    p.type = kEntryProcessor;
    p.apic_id = static_cast<uint8_t>(cpu);
    p.apic_version = kApicVersion;
    p.flags = kCpuEnabled | (cpu == 0 ? kCpuBootProcessor : 0);
    p.signature = kCpuSignature;
    p.features = kCpuFeatures;
    Append(entries, p);
  }
  MpBus bus{kEntryBus, kIsaBus, {'I', 'S', 'A', ' ', ' ', ' '}};
  Append(entries, bus), ++count;
  MpIoApic ioapic{kEntryIoApic, ioapic_id, kIoApicVersion, 1, static_cast<uint32_t>(layout::kIoapicAddress)};
  Append(entries, ioapic), ++count;
  for (uint8_t pin = 0; pin < kIoApicPins; ++pin, ++count) {
    Append(entries, MpInterrupt{kEntryIoInterrupt, kIrqInt, 0, kIsaBus, pin, ioapic_id, pin});
  }
  // LINT0 carries the legacy PIC (ExtINT) to the boot CPU; LINT1 is NMI on every CPU.
  Append(entries, MpInterrupt{kEntryLocalInterrupt, kIrqExtInt, 0, kIsaBus, 0, 0, 0}), ++count;
  Append(entries, MpInterrupt{kEntryLocalInterrupt, kIrqNmi, 0, kIsaBus, 0, 0xff, 1}), ++count;

  const uint64_t table_addr = layout::kEbdaStart + sizeof(MpFloatingPointer);
  MpConfigHeader header{};
  std::memcpy(header.signature, "PCMP", 4);
  header.length = static_cast<uint16_t>(sizeof header + entries.size());
  header.spec_rev = 4;
  std::memcpy(header.oem, "VMRUN   ", 8);
  std::memcpy(header.product, "MICROVM     ", 12);
  header.entry_count = count;
  header.lapic_addr = static_cast<uint32_t>(layout::kLapicAddress);

  std::vector<uint8_t> table;
  Append(table, header);
  table.insert(table.end(), entries.begin(), entries.end());
  table[offsetof(MpConfigHeader, checksum)] = Checksum(table.data(), table.size());
  memory.Write(table_addr, table.data(), table.size(), "MP table");

  MpFloatingPointer fp{};
  std::memcpy(fp.signature, "_MP_", 4);
  fp.config_table = static_cast<uint32_t>(table_addr);
  fp.length = 1;
  fp.spec_rev = 4;
  fp.checksum = Checksum(reinterpret_cast<const uint8_t*>(&fp), sizeof fp);
  memory.WriteObject(layout::kEbdaStart, fp, "MP floating pointer");
}

}  // namespace vmm::x86_64
