#include "vstate/vm_state.h"

#include "snapshot/byte_stream.h"

namespace vmm {

std::vector<uint8_t> EncodeVmState(const VmState& s) {
  snapshot::ByteWriter w;
  w.Put(s.pit);
  w.Put(s.clock);
  w.Put(s.pic_master);
  w.Put(s.pic_slave);
  w.Put(s.ioapic);
  return std::move(w.bytes());
}

VmState DecodeVmState(const std::vector<uint8_t>& bytes, const std::string& what) {
  snapshot::ByteReader r(bytes.data(), bytes.size(), what);
  VmState s;
  s.pit = r.Get<kvm_pit_state2>();
  s.clock = r.Get<kvm_clock_data>();
  s.pic_master = r.Get<kvm_irqchip>();
  s.pic_slave = r.Get<kvm_irqchip>();
  s.ioapic = r.Get<kvm_irqchip>();
  r.ExpectEnd();
  if (s.pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER || s.pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
      s.ioapic.chip_id != KVM_IRQCHIP_IOAPIC) {
    throw snapshot::SnapshotError(what + " names its interrupt controllers wrongly");
  }
  return s;
}

}  // namespace vmm
