// Saving a running vCPU and its VM, and restoring them into a fresh VM, on real KVM (the rig's
// nested SVM, or a host's): the guest counts in a register and reports each count on a port;
// after the restore (its RAM mapped copy-on-write from the memory file) it must go on from where
// it was, in the new VM, with its registers, MSRs and interrupt controllers as saved. Built as vmm_kvm_tests; test/kvm/vmm-state.test.ts runs it.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "arch/x86_64/cpuid.h"
#include "devices/bus.h"
#include "kvm.h"
#include "snapshot/memory_file.h"
#include "tests/check.h"
#include "vstate/memory.h"
#include "vstate/vcpu.h"
#include "vstate/vcpu_state.h"
#include "vstate/vm.h"
#include "vstate/vm_state.h"

using namespace vmm;

namespace {
constexpr uint64_t kRamBytes = uint64_t{16} << 20;
constexpr uint64_t kCode = 0x1000;
constexpr uint16_t kPort = 0x10;
// Real mode: inc ax; out 0x10, al; jmp back to the inc.
constexpr uint8_t kCounter[] = {0x40, 0xe6, kPort, 0xeb, 0xfb};

// Records what the guest writes to its port, and stops the vCPU after `stop_after` writes.
class CountPort : public devices::BusDevice {
 public:
  explicit CountPort(std::atomic<bool>& stop) : stop_(stop) {}
  void Read(uint64_t, uint8_t* data, uint32_t len) override { std::memset(data, 0xff, len); }
  void Write(uint64_t, const uint8_t* data, uint32_t) override {
    seen.push_back(data[0]);
    if (seen.size() >= stop_after) stop_ = true;
  }
  std::vector<uint8_t> seen;
  size_t stop_after = 0;

 private:
  std::atomic<bool>& stop_;
};

// One VM with one vCPU in real mode at kCode, and the buses its exits go to.
struct Guest {
  explicit Guest(std::unique_ptr<GuestMemory> ram = std::make_unique<GuestMemory>(kRamBytes)) : memory(std::move(ram)) {
    pio.Insert(kPort, 1, port);
  }
  std::unique_ptr<Kvm> kvm = std::make_unique<Kvm>(Kvm::OpenDevice());
  std::unique_ptr<GuestMemory> memory;
  std::unique_ptr<Vm> vm = std::make_unique<Vm>(*kvm, *memory);
  std::unique_ptr<Vcpu> vcpu = std::make_unique<Vcpu>(*kvm, *vm, 0);
  std::atomic<bool> stop{false};
  std::shared_ptr<CountPort> port = std::make_shared<CountPort>(stop);
  devices::Bus pio, mmio;

  // Runs until `writes` more port writes have been seen.
  void RunFor(size_t writes) {
    stop = false;
    port->stop_after = port->seen.size() + writes;
    const VcpuExit exit = vcpu->Run(pio, mmio, stop);
    CHECK(exit.kind == VcpuExit::Kind::kStopped);
  }
};

void StartCounting(Guest& g) {
  g.memory->Write(kCode, kCounter, sizeof kCounter, "the counter");
  g.vcpu->Configure(x86_64::NormalizeCpuid(g.kvm->SupportedCpuid(), 0, 1), *g.memory, nullptr);
  // Real mode at kCode: the reset state with CS moved to segment 0.
  VcpuState s = g.vcpu->SaveState(*g.kvm, {});
  s.sregs.cs.base = 0;
  s.sregs.cs.selector = 0;
  s.regs = kvm_regs{};
  s.regs.rip = kCode;
  s.regs.rflags = 2;
  g.vcpu->RestoreState(s);
}
}  // namespace

TEST(kvm_vcpu_and_vm_restored_into_a_fresh_vm_go_on) {
  auto first = std::make_unique<Guest>();
  StartCounting(*first);
  first->RunFor(5);
  CHECK(first->port->seen == std::vector<uint8_t>({1, 2, 3, 4, 5}));

  const std::vector<uint32_t> msr_indices = first->kvm->MsrIndexList();
  CHECK(!msr_indices.empty());
  const VcpuState saved = first->vcpu->SaveState(*first->kvm, msr_indices);
  const VmState saved_vm = first->vm->SaveState();
  CHECK(saved.msrs.size() > 10);
  CHECK_EQ(saved.regs.rax & 0xff, uint64_t{5});
  // Through the snapshot encoding, as a restore reads it.
  const VcpuState vcpu_state = DecodeVcpuState(EncodeVcpuState(saved), "vCPU 0");
  const VmState vm_state = DecodeVmState(EncodeVmState(saved_vm), "the VM");
  // Guest RAM through the memory file, mapped back copy-on-write as a restore maps it.
  char dir[] = "/tmp/vmrun-kvm-test-XXXXXX";
  CHECK(mkdtemp(dir) != nullptr);
  const std::string memory_path = std::string(dir) + "/memory";
  const uint64_t crc = snapshot::WriteMemoryFile(*first->memory, memory_path);
  first.reset();  // the first VM is gone before the second exists

  Fd memory_file(open(memory_path.c_str(), O_RDONLY | O_CLOEXEC));
  CHECK_EQ(snapshot::MemoryFileChecksum(memory_file.get(), kRamBytes, memory_path), crc);
  Guest second(std::make_unique<GuestMemory>(kRamBytes, GuestMemory::Backing::kFile, memory_file.get()));
  unlink(memory_path.c_str());
  rmdir(dir);
  second.vcpu->RestoreState(vcpu_state);
  second.vm->RestoreState(vm_state);
  const VcpuState restored = second.vcpu->SaveState(*second.kvm, msr_indices);
  CHECK_EQ(restored.regs.rip, saved.regs.rip);
  CHECK_EQ(restored.regs.rax, saved.regs.rax);
  CHECK_EQ(restored.sregs.cs.base, saved.sregs.cs.base);
  CHECK_EQ(restored.msrs.size(), saved.msrs.size());
  CHECK_EQ(restored.lapic.regs[0x20 + 3], saved.lapic.regs[0x20 + 3]);  // the APIC id's byte
  second.RunFor(3);
  CHECK(second.port->seen == std::vector<uint8_t>({6, 7, 8}));
}
