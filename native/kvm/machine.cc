#include "machine.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/snapshot_point.h"
#include "devices/virtio/block/block.h"
#include "devices/virtio/fs/fs.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/net/net.h"
#include "devices/virtio/rng/rng.h"
#include "devices/virtio/vsock/vsock.h"
#include "error.h"
#include "loader/initrd.h"
#include "loader/kernel.h"
#include "seccomp/filter.h"

namespace vmm {

Machine::Machine(MachineConfig config, ExitCallback on_exit)
    : on_exit_(std::move(on_exit)), snapshot_(std::move(config.snapshot)) {
  if (config.memory_mib < layout::kMinMemoryMiB) {
    throw VmmError("guest memory of " + std::to_string(config.memory_mib) + " MiB is too small: give at least " +
                   std::to_string(layout::kMinMemoryMiB) + " MiB");
  }
  if (config.memory_mib > (uint64_t{1} << 20)) throw VmmError("guest memory above 1 TiB is not supported");
  kvm_ = std::make_unique<Kvm>(std::move(config.kvm));
  const uint32_t max_vcpus = std::min<uint32_t>(kvm_->MaxVcpus(), x86_64::kMpTableMaxCpus);
  if (config.vcpus < 1 || config.vcpus > max_vcpus) {
    throw VmmError("vcpus must be between 1 and " + std::to_string(max_vcpus) + " on this host, not " +
                   std::to_string(config.vcpus));
  }
  const bool restoring = snapshot_ && snapshot_->mode == SnapshotConfig::Mode::kRestore;
  // A snapshot's RAM is a private mapping of its file; virtiofsd would need to map it shared.
  if (snapshot_ && !config.filesystems.empty()) {
    throw VmmError("a VM with virtio-fs devices cannot be snapshotted or restored: boot it instead");
  }

  if (restoring) CheckSnapshotMemorySize(config.memory_mib << 20);
  GuestMemory::Backing backing = config.filesystems.empty() ? GuestMemory::Backing::kPrivate : GuestMemory::Backing::kSharedMemfd;
  if (restoring) backing = GuestMemory::Backing::kFile;
  memory_ = std::make_unique<GuestMemory>(config.memory_mib << 20, backing, restoring ? snapshot_->memory.get() : -1);
  // A restored guest is past its boot: its kernel, command line and tables are in its memory.
  loader::KernelImage kernel{};
  loader::InitrdPlacement initrd;
  if (!restoring) {
    kernel = loader::LoadKernel(config.kernel, *memory_, config.kernel_fd);
    if (!config.initrd.empty()) initrd = loader::LoadInitrd(config.initrd, kernel, *memory_, config.initrd_fd);
  }
  vm_ = std::make_unique<Vm>(*kvm_, *memory_);

  std::string cmdline = config.cmdline;
  for (const DriveConfig& drive : config.drives) {
    cmdline += AttachVirtio(std::make_unique<devices::virtio::Block>(devices::virtio::DiskImage(drive.parts, drive.read_only)));
  }
  disk_count_ = config.drives.size();
  if (config.net) {
    cmdline += AttachVirtio(std::make_unique<devices::virtio::Net>(std::move(config.net->socket), config.net->mac));
  }
  for (FsConfig& fs : config.filesystems) {
    cmdline += AttachVirtio(std::make_unique<devices::virtio::Fs>(std::move(fs.socket), fs.tag, *memory_));
  }
  if (const auto& vsock = config.vsock) {
    cmdline += AttachVirtio(std::make_unique<devices::virtio::vsock::Vsock>(vsock->guest_cid, vsock->uds_path));
  }
  cmdline += AttachVirtio(std::make_unique<devices::virtio::Rng>());
  uint64_t boot_info = 0;
  if (!restoring) {
    boot_info = x86_64::WriteBootInfo(*memory_, kernel, cmdline, initrd);
    x86_64::WriteMpTable(*memory_, config.vcpus);
  }
  console_out_write_ = std::move(config.console_output);
  console_in_read_ = std::move(config.console_input);
  CheckSys(fcntl(console_in_read_.get(), F_SETFL, O_NONBLOCK), "fcntl(F_SETFL)", "the console's input");
  rx_space_ = Fd(CheckSys(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd"));
  const Vm* vm = vm_.get();
  const int rx_space = rx_space_.get();
  serial_ = std::make_shared<devices::Serial>(
      console_out_write_.get(), [vm] { vm->PulseIrq(devices::Serial::kCom1Irq); },
      [rx_space] {
        uint64_t one = 1;
        (void)!write(rx_space, &one, sizeof one);
      });
  pio_.Insert(devices::Serial::kCom1Base, devices::Serial::kSize, serial_);
  pio_.Insert(devices::BootTimer::kPort, devices::BootTimer::kSize, boot_timer_);
  pio_.Insert(devices::I8042::kBase, devices::I8042::kSize, std::make_shared<devices::I8042>([this] {
                Finish({MachineExit::Kind::kReset, "the guest reset the machine (i8042)"});
              }));
  if (snapshot_ && !restoring) {
    pio_.Insert(devices::SnapshotPoint::kPort, devices::SnapshotPoint::kSize, std::make_shared<devices::SnapshotPoint>([this] {
                  Finish({MachineExit::Kind::kSnapshotted, "the guest reached its snapshot point"});
                }));
  }

  // Host input flows into the UART while it has room; otherwise the fd leaves the loop until the
  // UART takes input again (rx_space), so input is never dropped and never buffered unbounded.
  WatchConsoleInput();
  event_loop_.Add(rx_space_.get(), EPOLLIN, [this](uint32_t) {
    uint64_t count;
    (void)!read(rx_space_.get(), &count, sizeof count);
    if (console_in_read_.valid() && console_input_paused_) WatchConsoleInput();
  });

  const std::vector<kvm_cpuid_entry2> supported = kvm_->SupportedCpuid();
  const x86_64::BootEntry entry{kernel.mode, kernel.entry_addr, boot_info};
  for (uint32_t i = 0; i < config.vcpus; ++i) {
    auto vcpu = std::make_unique<Vcpu>(*kvm_, *vm_, i);
    if (!restoring) vcpu->Configure(x86_64::NormalizeCpuid(supported, i, config.vcpus), *memory_, i == 0 ? &entry : nullptr);
    vcpus_.push_back(std::move(vcpu));
  }
  if (!snapshot_) return;
  snapshot_fingerprint_ = SnapshotFingerprint(snapshot_->fingerprint, supported);
  if (restoring) {
    RestoreSnapshot();
    ResumeDevices();
  } else {
    msr_indices_ = kvm_->MsrIndexList();
  }
}

std::string Machine::AttachVirtio(std::unique_ptr<devices::virtio::VirtioDevice> device) {
  if (virtio_devices_ == layout::kVirtioMaxDevices) throw VmmError("too many virtio devices");
  const uint64_t base = layout::kVirtioMmioStart + virtio_devices_ * devices::virtio::MmioTransport::kSize;
  const uint32_t irq = layout::kVirtioFirstIrq + virtio_devices_;
  ++virtio_devices_;
  devices::virtio::VirtioDevice& attached = *device;

  Fd irqfd(CheckSys(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd"));
  vm_->RegisterIrqfd(irqfd.get(), irq);
  const int irq_fd = irqfd.get();
  device_fds_.push_back(std::move(irqfd));
  auto transport = std::make_shared<devices::virtio::MmioTransport>(*memory_, std::move(device), [irq_fd] {
    uint64_t one = 1;
    (void)!write(irq_fd, &one, sizeof one);
  });
  mmio_.Insert(base, devices::virtio::MmioTransport::kSize, transport);
  transports_.push_back(transport);
  // The transport outlives the event loop (see the members' order), so a plain pointer will do.
  attached.Activate(event_loop_, [t = transport.get()](uint16_t q) { t->ProcessQueue(q); });

  for (uint16_t q = 0; q < transport->queue_count(); ++q) {
    Fd doorbell(CheckSys(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd"));
    vm_->RegisterIoeventfd(base + devices::virtio::MmioTransport::kQueueNotifyOffset, q, doorbell.get());
    const int fd = doorbell.get();
    if (attached.TakeDoorbell(q, fd)) {
      device_fds_.push_back(std::move(doorbell));
      continue;
    }
    event_loop_.Add(fd, EPOLLIN, [fd, q, transport](uint32_t) {
      uint64_t count;
      (void)!read(fd, &count, sizeof count);
      transport->ProcessQueue(q);
    });
    device_fds_.push_back(std::move(doorbell));
  }
  char arg[64];
  std::snprintf(arg, sizeof arg, " virtio_mmio.device=4K@0x%llx:%u", static_cast<unsigned long long>(base), irq);
  return arg;
}

Machine::~Machine() {
  Stop();
  Join();
}

void Machine::Start() {
  if (started_) throw VmmError("the machine was already started");
  started_ = true;
  event_loop_.Start([] {
    pthread_setname_np(pthread_self(), "vmrun-devices");
    seccomp::InstallOnThisThread(seccomp::ThreadKind::kDevice);
  });
  running_vcpus_ = vcpus_.size();
  for (auto& vcpu : vcpus_) {
    threads_.emplace_back([this, v = vcpu.get()] { RunVcpu(*v); });
    vcpu->SetThread(threads_.back().native_handle());
  }
}

void Machine::RunVcpu(Vcpu& vcpu) {
  Vcpu::PrepareThreadSignals();
  VcpuExit result;
  try {
    pthread_setname_np(pthread_self(), ("vmrun-vcpu" + std::to_string(vcpu.index())).c_str());
    seccomp::InstallOnThisThread(seccomp::ThreadKind::kVcpu);
    result = vcpu.Run(pio_, mmio_, stop_);
  } catch (const std::exception& e) {  // from a device or the filter: it must not end the process from this thread
    result = {VcpuExit::Kind::kError, "vCPU " + std::to_string(vcpu.index()) + ": " + e.what()};
  }
  switch (result.kind) {
    case VcpuExit::Kind::kTripleFault:
      Finish({MachineExit::Kind::kTripleFault, result.detail});
      break;
    case VcpuExit::Kind::kError:
      Finish({MachineExit::Kind::kError, result.detail});
      break;
    case VcpuExit::Kind::kStopped:
      Finish({MachineExit::Kind::kStopped, "stopped by the host"});
      break;
  }
  if (--running_vcpus_ == 0) {
    event_loop_.Stop();
    on_exit_(exit_);
  }
}

void Machine::Finish(const MachineExit& exit) {
  {
    std::lock_guard<std::mutex> lock(exit_mutex_);
    if (!exit_recorded_) {
      exit_recorded_ = true;
      exit_ = exit;
    }
  }
  Stop();
}

void Machine::Stop() {
  stop_ = true;
  for (auto& vcpu : vcpus_) vcpu->Kick();
}

void Machine::Join() {
  for (size_t i = 0; i < threads_.size(); ++i) {
    if (threads_[i].joinable()) threads_[i].join();
    vcpus_[i]->ForgetThread();  // ~Machine's Stop() kicks every vCPU: never a joined thread
  }
  event_loop_.Stop();
  console_out_write_.Reset();  // the host's reader now sees end of file
}

void Machine::WatchConsoleInput() {
  console_input_paused_ = false;
  event_loop_.Add(console_in_read_.get(), EPOLLIN, [this](uint32_t) { OnConsoleInput(); });
}

void Machine::OnConsoleInput() {
  uint8_t buf[devices::Serial::kRxFifoSize];
  const size_t room = serial_->RxRoom();
  if (room == 0) {
    // Not just paused (0 events): a hung-up pipe would still report EPOLLHUP, in a busy loop.
    event_loop_.Remove(console_in_read_.get());
    console_input_paused_ = true;
    return;
  }
  ssize_t n = read(console_in_read_.get(), buf, room);
  if (n == 0) {  // the host closed its end
    event_loop_.Remove(console_in_read_.get());
    console_in_read_.Reset();
  } else if (n > 0) {
    serial_->EnqueueInput(buf, n);  // fits: only this thread adds to the FIFO
  }
}

}  // namespace vmm
