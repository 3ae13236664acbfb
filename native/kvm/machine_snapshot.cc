// A Machine's snapshot, taken and put back (Firecracker's orders, docs in README "Snapshots"):
// saving, the devices first (preparing may interrupt the guest, and that interrupt must be in
// the saved state), then the vCPUs, the VM, and guest memory last; restoring, memory checked
// before anything else is believed, then the vCPUs, the VM, and the devices.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "error.h"
#include "machine.h"
#include "snapshot/byte_stream.h"
#include "snapshot/crc64.h"
#include "snapshot/file_io.h"
#include "snapshot/memory_file.h"
#include "snapshot/snapshot_file.h"
#include "vstate/vcpu_state.h"
#include "vstate/vm_state.h"

namespace vmm {

namespace {
// The state file's sections (snapshot_file.h).
enum Tag : uint32_t { kTagVcpu = 1, kTagVm = 2, kTagVirtio = 3, kTagSerial = 4, kTagMemory = 5 };
// Far above a state file's size (a few KiB per vCPU and device), so that a huge file is refused unread.
constexpr uint64_t kMaxStateBytes = 16 << 20;

std::string Hex(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

std::string Remedy() { return ": delete the snapshot and vmrun takes a new one"; }
}  // namespace

std::string Machine::SnapshotFingerprint(const std::string& host_part, const std::vector<kvm_cpuid_entry2>& supported_cpuid) const {
  // What KVM offers on this host stands for the CPU: another model, microcode or KVM differs.
  const uint64_t cpu = snapshot::Crc64(reinterpret_cast<const uint8_t*>(supported_cpuid.data()),
                                       supported_cpuid.size() * sizeof(kvm_cpuid_entry2), 0);
  std::string f = host_part + "; cpu " + Hex(cpu) + "; " + std::to_string(memory_->size() >> 20) + " MiB; " +
                  std::to_string(vcpus_.size()) + " vCPUs; devices";
  for (const auto& t : transports_) f += " " + std::to_string(t->device_id()) + ":" + Hex(t->device_features());
  return f;
}

void Machine::SaveSnapshot() {
  if (!snapshot_ || snapshot_->mode != SnapshotConfig::Mode::kTake) throw VmmError("this machine takes no snapshot");
  if (threads_.empty() || running_vcpus_ != 0) throw VmmError("a snapshot is saved only once every vCPU has stopped");
  for (const auto& t : transports_) t->PrepareSnapshot();

  snapshot::StateFile file{snapshot_fingerprint_, {}};
  for (const auto& vcpu : vcpus_) file.sections.push_back({kTagVcpu, EncodeVcpuState(vcpu->SaveState(*kvm_, msr_indices_))});
  file.sections.push_back({kTagVm, EncodeVmState(vm_->SaveState())});
  for (const auto& t : transports_) file.sections.push_back({kTagVirtio, t->SaveState()});
  file.sections.push_back({kTagSerial, serial_->SaveState()});

  snapshot::ByteWriter memory;
  memory.Put(memory_->size());
  memory.Put(snapshot::WriteMemoryFile(*memory_, snapshot_->memory.get(), snapshot_->memory_name));
  file.sections.push_back({kTagMemory, std::move(memory.bytes())});

  const std::vector<uint8_t> bytes = snapshot::EncodeStateFile(file);
  const int fd = snapshot_->state.get();
  CheckSys(ftruncate(fd, 0), "ftruncate", snapshot_->state_name);
  snapshot::WriteAt(fd, bytes.data(), bytes.size(), 0, snapshot_->state_name);
  CheckSys(fsync(fd), "fsync", snapshot_->state_name);
}

void Machine::CheckSnapshotMemorySize(uint64_t bytes) const {
  struct stat st;
  CheckSys(fstat(snapshot_->memory.get(), &st), "fstat", snapshot_->memory_name);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != bytes) {
    throw snapshot::SnapshotError("the snapshot's guest memory " + snapshot_->memory_name + " holds " +
                                  std::to_string(st.st_size >> 20) + " MiB, and this VM has " + std::to_string(bytes >> 20) +
                                  " MiB" + Remedy());
  }
}

void Machine::RestoreSnapshot() {
  const std::string& name = snapshot_->state_name;
  const std::vector<uint8_t> bytes = snapshot::ReadWholeFile(snapshot_->state.get(), name, kMaxStateBytes);
  const snapshot::StateFile file = snapshot::DecodeStateFile(bytes.data(), bytes.size(), snapshot_fingerprint_, name);

  // The guest must never run on pages the snapshot did not write.
  const std::vector<uint8_t>& memory = file.Only(kTagMemory, name);
  snapshot::ByteReader m(memory.data(), memory.size(), name);
  const uint64_t size = m.Get<uint64_t>(), checksum = m.Get<uint64_t>();
  m.ExpectEnd();
  if (size != memory_->size()) throw snapshot::SnapshotError(name + " is of a VM with other memory" + Remedy());
  if (snapshot::MemoryFileChecksum(snapshot_->memory.get(), size, snapshot_->memory_name) != checksum) {
    throw snapshot::SnapshotError("the snapshot's guest memory " + snapshot_->memory_name + " is corrupt (its checksum differs)" + Remedy());
  }

  const auto vcpus = file.All(kTagVcpu);
  const auto devices = file.All(kTagVirtio);
  if (vcpus.size() != vcpus_.size() || devices.size() != transports_.size()) {
    throw snapshot::SnapshotError(name + " does not hold this VM's vCPUs and devices" + Remedy());
  }
  for (size_t i = 0; i < vcpus.size(); ++i) {
    const std::string what = "vCPU " + std::to_string(i) + " of " + name;
    vcpus_[i]->RestoreState(DecodeVcpuState(vcpus[i]->bytes, what));
  }
  vm_->RestoreState(DecodeVmState(file.Only(kTagVm, name), "the VM of " + name));
  for (size_t i = 0; i < devices.size(); ++i) {
    transports_[i]->RestoreState(devices[i]->bytes, "virtio device " + std::to_string(i) + " of " + name);
  }
  serial_->RestoreState(file.Only(kTagSerial, name), "the serial port of " + name);
}

void Machine::ResumeDevices() {
  for (size_t i = 0; i < transports_.size(); ++i) transports_[i]->Resume(i < disk_count_);
}

}  // namespace vmm
