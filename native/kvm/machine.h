// A whole microVM, wired from its config: guest memory, the VM, its vCPUs and devices, the
// device thread. It runs in a VMM process of its own (native/vmm/main.cc), which is handed every
// file as a descriptor; the addon (native/addon.cc) starts and speaks to that process.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "devices/bus.h"
#include "devices/legacy/boot_timer.h"
#include "devices/legacy/serial.h"
#include "devices/virtio/block/disk_image.h"
#include "devices/virtio/device.h"
#include "devices/virtio/mmio.h"
#include "event_loop.h"
#include "fd.h"
#include "kvm.h"
#include "vstate/memory.h"
#include "vstate/vcpu.h"
#include "vstate/vm.h"

namespace vmm {

// A virtio disk (/dev/vda, /dev/vdb, ...): one host file or block device, or (read-only) files
// end to end at given offsets.
struct DriveConfig {
  std::vector<devices::virtio::DiskPart> parts;
  bool read_only = false;
};

// A virtio-vsock device whose host side is Unix sockets (Firecracker's convention): the guest's
// connections to host port P go to `<uds_path>_<P>`; host clients of `<uds_path>` reach guest
// ports with "CONNECT <port>\n".
struct VsockConfig {
  uint64_t guest_cid = 3;
  std::string uds_path;
};

// A virtio-net device whose other end is passt, on a connected stream socket (QEMU's framing).
struct NetConfig {
  Fd socket;
  std::array<uint8_t, 6> mac{};
};

// A virtio-fs device whose queues a virtiofsd serves (vhost-user), on a connected socket; the
// guest mounts it by its tag.
struct FsConfig {
  Fd socket;
  std::string tag;
};

// A snapshot to take when the guest reaches its snapshot point (kTake: the files are written),
// or to start the guest from instead of booting it (kRestore: they are read). `fingerprint` is
// the host's part of what a snapshot fits (vmrun, kernel, agent); the machine adds its own (CPU,
// memory, vCPUs, devices), and a restore refuses a snapshot whose fingerprint differs.
struct SnapshotConfig {
  enum class Mode { kTake, kRestore };
  Mode mode = Mode::kTake;
  Fd state, memory;
  std::string state_name, memory_name;
  std::string fingerprint;
};

// Files are named (for errors) and given open: `*_fd` and each DiskPart's fd are borrowed and
// duplicated; the Fds are the machine's from then on.
struct MachineConfig {
  Fd kvm;               // /dev/kvm (Kvm::OpenDevice)
  std::string kernel;   // bzImage or ELF vmlinux (PVH); unused when restoring
  int kernel_fd = -1;
  std::string initrd;   // empty: none
  int initrd_fd = -1;
  std::string cmdline;
  uint64_t memory_mib = 128;
  uint32_t vcpus = 1;
  std::vector<DriveConfig> drives;
  std::optional<VsockConfig> vsock;
  std::optional<NetConfig> net;
  std::vector<FsConfig> filesystems;  // guest RAM is then a shared memfd the back ends map
  Fd console_output;  // the serial port's output is written here
  Fd console_input;   // and its input read from here
  std::optional<SnapshotConfig> snapshot;
};

// How a machine ended. kReset: the guest reset itself (its way to power off); kStopped: the host
// stopped it; kTripleFault: the guest crashed the CPU; kError: KVM or the VMM failed;
// kSnapshotted: the guest reached its snapshot point and waits there for SaveSnapshot().
struct MachineExit {
  enum class Kind { kReset, kStopped, kTripleFault, kError, kSnapshotted };
  Kind kind;
  std::string detail;
};

class Machine {
 public:
  using ExitCallback = std::function<void(const MachineExit&)>;

  // Builds the VM and loads the guest, or puts back a snapshot of one; throws VmmError (or
  // SysError, SnapshotError) and leaves nothing behind.
  // `on_exit` runs once, on a VMM thread, after every vCPU has stopped.
  Machine(MachineConfig config, ExitCallback on_exit);
  ~Machine();  // stops the guest if it runs, joins every thread, closes every fd
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  void Start();
  // Asks every vCPU to stop; on_exit then reports kStopped unless the guest ended first.
  void Stop();
  // Waits for every VMM thread to finish. After on_exit this returns promptly.
  void Join();

  // Once on_exit reported kSnapshotted and Join() returned: writes the snapshot to the config's
  // files (machine_snapshot.cc). Throws what failed; the files are then the caller's to remove.
  void SaveSnapshot();

  uint64_t GuestResidentBytes() const { return memory_->ResidentBytes(); }
  uint64_t GuestMemoryBytes() const { return memory_->size(); }
  // Host CLOCK_MONOTONIC ns of the guest's first boot-timer write (its init starting); 0: none yet.
  uint64_t BootTimerNs() const { return boot_timer_->FirstWriteNs(); }

 private:
  // Puts a virtio device on the next virtio-mmio slot: its page on the MMIO bus, its doorbells on
  // ioeventfds served by the device thread, its interrupt on an irqfd. Returns the kernel
  // command-line argument that declares it.
  std::string AttachVirtio(std::unique_ptr<devices::virtio::VirtioDevice> device);
  // What a snapshot of this machine fits: the host's part and this machine's shape.
  std::string SnapshotFingerprint(const std::string& host_part, const std::vector<kvm_cpuid_entry2>& supported_cpuid) const;
  // Refuses a snapshot memory file of another size than this VM's RAM (machine_snapshot.cc).
  void CheckSnapshotMemorySize(uint64_t bytes) const;
  // Puts the snapshot's state back into the built VM, vCPUs first (machine_snapshot.cc).
  void RestoreSnapshot();
  // Tells a restored guest what changed under it: the disks it had no backing for, the
  // interrupts pending at the snapshot.
  void ResumeDevices();
  void RunVcpu(Vcpu& vcpu);
  void Finish(const MachineExit& exit);
  void WatchConsoleInput();
  void OnConsoleInput();

  ExitCallback on_exit_;
  std::unique_ptr<Kvm> kvm_;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<Vm> vm_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  devices::Bus pio_;
  devices::Bus mmio_;
  std::shared_ptr<devices::Serial> serial_;
  std::shared_ptr<devices::BootTimer> boot_timer_ = std::make_shared<devices::BootTimer>();
  EventLoop event_loop_{[this](const std::string& what) {
    Finish({MachineExit::Kind::kError, "device thread: " + what});
  }};

  Fd console_out_write_, console_in_read_;
  Fd rx_space_;  // eventfd: the UART takes input again
  std::vector<Fd> device_fds_;  // virtio ioeventfds and irqfds
  std::vector<std::shared_ptr<devices::virtio::MmioTransport>> transports_;  // in slot order, the disks first
  size_t disk_count_ = 0;
  std::optional<SnapshotConfig> snapshot_;
  std::string snapshot_fingerprint_;
  std::vector<uint32_t> msr_indices_;  // read before the filters, for SaveSnapshot
  uint32_t virtio_devices_ = 0;
  bool console_input_paused_ = false;  // touched on the device thread only (and before it starts)

  std::atomic<bool> stop_{false};
  std::mutex exit_mutex_;
  bool exit_recorded_ = false;
  MachineExit exit_{MachineExit::Kind::kStopped, ""};
  std::atomic<uint32_t> running_vcpus_{0};
  std::vector<std::thread> threads_;
  bool started_ = false;
};

}  // namespace vmm
