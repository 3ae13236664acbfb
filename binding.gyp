# The addon (the Node face), the VMM process it starts for each VM (no Node in it), the VMM's
# unit tests, and its tests that need a working /dev/kvm (run in the rig: test/kvm/vmm-state).
# The source lists are shared: a device is compiled the same way everywhere.
{
  "variables": {
    "vmm_device_sources": [
      "native/kvm/error.cc",
      "native/kvm/event_loop.cc",
      "native/kvm/vstate/memory.cc",
      "native/kvm/arch/x86_64/boot_info.cc",
      "native/kvm/arch/x86_64/cpuid.cc",
      "native/kvm/arch/x86_64/e820.cc",
      "native/kvm/arch/x86_64/gdt.cc",
      "native/kvm/arch/x86_64/mptable.cc",
      "native/kvm/loader/bzimage.cc",
      "native/kvm/loader/elf.cc",
      "native/kvm/loader/file.cc",
      "native/kvm/loader/initrd.cc",
      "native/kvm/loader/kernel.cc",
      "native/kvm/devices/bus.cc",
      "native/kvm/devices/legacy/boot_timer.cc",
      "native/kvm/devices/legacy/i8042.cc",
      "native/kvm/devices/legacy/serial.cc",
      "native/kvm/devices/virtio/queue.cc",
      "native/kvm/devices/virtio/descriptor_utils.cc",
      "native/kvm/devices/virtio/mmio.cc",
      "native/kvm/devices/virtio/block/block.cc",
      "native/kvm/devices/virtio/block/disk_image.cc",
      "native/kvm/seccomp/allowlists.cc",
      "native/kvm/seccomp/filter.cc",
      "native/kvm/devices/virtio/net/net.cc",
      "native/kvm/devices/virtio/fs/fs.cc",
      "native/kvm/devices/virtio/fs/vhost_user.cc",
      "native/kvm/devices/virtio/rng/rng.cc",
      "native/kvm/devices/virtio/vsock/connection.cc",
      "native/kvm/devices/virtio/vsock/packet.cc",
      "native/kvm/devices/virtio/vsock/vsock.cc",
      "native/kvm/seccomp/syscall_names.cc",
      "native/kvm/control/wire.cc",
      "native/kvm/control/messages.cc",
      "native/kvm/snapshot/crc64.cc",
      "native/kvm/snapshot/file_io.cc",
      "native/kvm/snapshot/memory_file.cc",
      "native/kvm/snapshot/snapshot_file.cc",
      "native/kvm/vstate/vcpu_state.cc",
      "native/kvm/vstate/vm_state.cc"
    ],
    "vmm_machine_sources": [
      "native/kvm/kvm.cc",
      "native/kvm/machine.cc",
      "native/kvm/machine_snapshot.cc",
      "native/kvm/vstate/vm.cc",
      "native/kvm/vstate/vcpu.cc",
      "native/kvm/arch/x86_64/regs.cc",
      "native/kvm/jail/cgroup.cc",
      "native/kvm/jail/jail.cc"
    ]
  },
  "target_defaults": {
    "cflags!": [
      "-fno-exceptions"
    ],
    "cflags_cc!": [
      "-fno-exceptions",
      "-fno-rtti"
    ],
    "cflags_cc": [
      "-std=c++17",
      "-fexceptions",
      "-Wall",
      "-Wextra",
      "-Wno-missing-field-initializers",
      "-O2"
    ]
  },
  "targets": [
    {
      "target_name": "vmrun_kvm",
      "sources": [
        "native/addon.cc",
        "native/kvm/control/vmm_process.cc",
        "native/kvm/control/vsock_dir.cc",
        "native/kvm/control/wire.cc",
        "native/kvm/control/messages.cc",
        "native/kvm/error.cc",
        "native/kvm/kvm.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/kvm"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS"
      ]
    },
    {
      "target_name": "vmrun-vmm",
      "type": "executable",
      "ldflags": [
        "-static"
      ],
      "sources": [
        "native/vmm/main.cc",
        "<@(vmm_device_sources)",
        "<@(vmm_machine_sources)"
      ],
      "include_dirs": [
        "native/kvm"
      ]
    },
    {
      "target_name": "vmm_unit_tests",
      "type": "executable",
      "sources": [
        "native/kvm/tests/main.cc",
        "native/kvm/tests/boot_info_test.cc",
        "native/kvm/tests/boot_timer_test.cc",
        "native/kvm/tests/control_test.cc",
        "native/kvm/control/vsock_dir.cc",
        "native/kvm/tests/bus_test.cc",
        "native/kvm/tests/block_test.cc",
        "native/kvm/tests/net_test.cc",
        "native/kvm/tests/fs_test.cc",
        "native/kvm/tests/cpuid_test.cc",
        "native/kvm/tests/i8042_test.cc",
        "native/kvm/tests/loader_test.cc",
        "native/kvm/tests/memory_test.cc",
        "native/kvm/tests/mptable_test.cc",
        "native/kvm/tests/seccomp_test.cc",
        "native/kvm/tests/serial_test.cc",
        "native/kvm/tests/virtio_test.cc",
        "native/kvm/tests/vsock_test.cc",
        "native/kvm/tests/snapshot_file_test.cc",
        "<@(vmm_device_sources)"
      ],
      "include_dirs": [
        "native/kvm"
      ]
    },
    {
      "target_name": "vmm_kvm_tests",
      "type": "executable",
      "sources": [
        "native/kvm/tests/main.cc",
        "native/kvm/tests/vcpu_snapshot_kvm_test.cc",
        "<@(vmm_device_sources)",
        "<@(vmm_machine_sources)"
      ],
      "include_dirs": [
        "native/kvm"
      ]
    }
  ]
}
