#include "vstate/vm.h"

#include <sys/ioctl.h>

#include "arch/x86_64/layout.h"
#include "error.h"

namespace vmm {

Vm::Vm(const Kvm& kvm, const GuestMemory& memory) {
  fd_ = Fd(CheckSys(ioctl(kvm.fd(), KVM_CREATE_VM, 0), "KVM_CREATE_VM"));
  CheckSys(ioctl(fd(), KVM_SET_TSS_ADDR, layout::kTssAddress), "KVM_SET_TSS_ADDR");

  uint32_t slot = 0;
  for (const MemoryRegion& r : memory.regions()) {
    kvm_userspace_memory_region region{};
    region.slot = slot++;
    region.guest_phys_addr = r.guest_addr;
    region.memory_size = r.size;
    region.userspace_addr = reinterpret_cast<uint64_t>(r.host);
    CheckSys(ioctl(fd(), KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
  }

  // The irqchip must exist before any vCPU is created.
  CheckSys(ioctl(fd(), KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;
  CheckSys(ioctl(fd(), KVM_CREATE_PIT2, &pit), "KVM_CREATE_PIT2");
}

void Vm::PulseIrq(uint32_t irq) const {
  for (uint32_t level : {1u, 0u}) {
    kvm_irq_level line{};
    line.irq = irq;
    line.level = level;
    CheckSys(ioctl(fd(), KVM_IRQ_LINE, &line), "KVM_IRQ_LINE");
  }
}

}  // namespace vmm

namespace vmm {

void Vm::RegisterIoeventfd(uint64_t addr, uint32_t value, int fd) const {
  kvm_ioeventfd ev{};
  ev.datamatch = value;
  ev.addr = addr;
  ev.len = 4;
  ev.fd = fd;
  ev.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
  CheckSys(ioctl(fd_.get(), KVM_IOEVENTFD, &ev), "KVM_IOEVENTFD");
}

void Vm::RegisterIrqfd(int fd, uint32_t gsi) const {
  kvm_irqfd irqfd{};
  irqfd.fd = fd;
  irqfd.gsi = gsi;
  CheckSys(ioctl(fd_.get(), KVM_IRQFD, &irqfd), "KVM_IRQFD");
}

VmState Vm::SaveState() const {
  VmState s;
  CheckSys(ioctl(fd(), KVM_GET_PIT2, &s.pit), "KVM_GET_PIT2");
  CheckSys(ioctl(fd(), KVM_GET_CLOCK, &s.clock), "KVM_GET_CLOCK");
  s.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
  s.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
  s.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
  for (kvm_irqchip* chip : {&s.pic_master, &s.pic_slave, &s.ioapic}) CheckSys(ioctl(fd(), KVM_GET_IRQCHIP, chip), "KVM_GET_IRQCHIP");
  return s;
}

void Vm::RestoreState(const VmState& s) const {
  CheckSys(ioctl(fd(), KVM_SET_PIT2, &s.pit), "KVM_SET_PIT2");
  // KVM_SET_CLOCK takes only flags it knows how to apply; what GET_CLOCK reported about the
  // clock's stability (and the host's time beside it) is not among them.
  kvm_clock_data clock = s.clock;
  clock.flags = 0;
  CheckSys(ioctl(fd(), KVM_SET_CLOCK, &clock), "KVM_SET_CLOCK");
  for (const kvm_irqchip* chip : {&s.pic_master, &s.pic_slave, &s.ioapic}) {
    CheckSys(ioctl(fd(), KVM_SET_IRQCHIP, chip), "KVM_SET_IRQCHIP");
  }
}

}  // namespace vmm
