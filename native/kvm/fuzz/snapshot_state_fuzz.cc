// libFuzzer target: a snapshot's state file (snapshot/snapshot_file.h), which a restore reads from
// disk and must refuse whole when anything in it is off. The input is decoded as a state file
// (the fingerprint it claims is the one expected, so that fuzzing reaches the sections), then
// each section as a vCPU's, as the VM's, as a virtio-mmio transport's (an rng behind it) and as
// the serial port's state; anything but a clean decode or SnapshotError is a finding.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "devices/legacy/serial.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/rng/rng.h"
#include "snapshot/crc64.h"
#include "snapshot/snapshot_file.h"
#include "vstate/memory.h"
#include "vstate/vcpu_state.h"
#include "vstate/vm_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using vmm::snapshot::SnapshotError;
  // The checksum would turn away nearly every mutation before the parser sees it: the fuzzer's
  // input gets a valid one appended, so the parser behind it is what is tested.
  std::vector<uint8_t> file(data, data + size);
  const uint64_t crc = vmm::snapshot::Crc64(file.data(), file.size());
  file.insert(file.end(), reinterpret_cast<const uint8_t*>(&crc), reinterpret_cast<const uint8_t*>(&crc) + sizeof crc);
  std::string fingerprint;
  if (size >= 16) {
    uint32_t length;
    std::memcpy(&length, data + 12, sizeof length);
    if (length <= size - 16) fingerprint.assign(reinterpret_cast<const char*>(data + 16), length);
  }
  try {
    const vmm::snapshot::StateFile state = vmm::snapshot::DecodeStateFile(file.data(), file.size(), fingerprint, "fuzz");
    for (const vmm::snapshot::Section& s : state.sections) {
      try {
        (void)vmm::EncodeVcpuState(vmm::DecodeVcpuState(s.bytes, "vCPU"));
      } catch (const SnapshotError&) {
      }
      try {
        (void)vmm::EncodeVmState(vmm::DecodeVmState(s.bytes, "VM"));
      } catch (const SnapshotError&) {
      }
      static vmm::GuestMemory memory(1 << 20);
      vmm::devices::virtio::MmioTransport transport(memory, std::make_unique<vmm::devices::virtio::Rng>(), [] {});
      try {
        transport.RestoreState(s.bytes, "transport");
        transport.ProcessQueue(0);
      } catch (const SnapshotError&) {
      }
      vmm::devices::Serial serial(-1, [] {}, [] {});
      try {
        serial.RestoreState(s.bytes, "serial");
        (void)serial.SaveState();
      } catch (const SnapshotError&) {
      }
    }
  } catch (const SnapshotError&) {
  }
  return 0;
}
