#!/usr/bin/env bash
# Builds vmrun's libFuzzer targets (clang, ASan + UBSan) and runs each one, reporting its inputs
# run, execs/s and coverage. Crashes are saved under build/fuzz/crashes/ and fail the script.
#
#   bash bench/fuzz.sh                 # every target for 10^7 inputs (the published figures)
#   bash bench/fuzz.sh --seconds 60    # every target for a minute (CI's smoke run)
#   bash bench/fuzz.sh --runs N TARGET # one target
#
# Each starts from its saved corpus (native/kvm/fuzz/corpus/, guest/agent/fuzz/corpus/), which
# a run only reads; new inputs go to build/fuzz/corpus/. Targets:
#   virtio_mmio    the transport and rng, blk (ro, rw), vsock, net, fs behind it: registers, rings, doorbells
#   vsock_packets  vsock packets, rx buffers and host socket events straight into the device
#   net_frames     virtio-net frames both ways: guest chains, rx buffers, passt's stream and its end
#   vhost_user     the vhost-user front end's reading of a hostile back end's replies (virtio-fs)
#   agent_frames   the agent's frame reader and spec parser (what the host sends)
#   control_messages  the host's decoder of what a VMM process sends (a guest that owns its VMM)
#   snapshot_state    a snapshot's state file and the vCPU, VM, virtio-mmio and serial state in its sections
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-runs=10000000)
only=
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    --runs) limit=(-runs="$2"); shift 2 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) only=$1; shift ;;
  esac
done
command -v clang++ >/dev/null || { echo "fuzz.sh: clang is missing: apt-get install clang libclang-rt-14-dev" >&2; exit 1; }

out=build/fuzz
mkdir -p "$out/crashes"
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
vmm=(native/kvm/vstate/memory.cc native/kvm/error.cc native/kvm/event_loop.cc native/kvm/devices/virtio/queue.cc
     native/kvm/devices/virtio/descriptor_utils.cc)
build() {  # NAME SOURCES... : rebuilt when a source is newer than the binary
  local name=$1; shift
  local bin="$out/$name"
  if [ ! -x "$bin" ] || [ -n "$(find "$@" native/kvm guest/agent -newer "$bin" -name '*.[ch]*' -print -quit)" ]; then
    case "$1" in
      *.c) clang "${flags[@]}" -std=gnu11 -o "$bin" "$@" ;;
      *) clang++ "${flags[@]}" -std=c++17 -Inative/kvm -o "$bin" "$@" ;;
    esac
  fi
}
build virtio_mmio native/kvm/fuzz/virtio_mmio_fuzz.cc "${vmm[@]}" native/kvm/devices/virtio/mmio.cc \
  native/kvm/devices/virtio/rng/rng.cc native/kvm/devices/virtio/block/*.cc native/kvm/devices/virtio/vsock/*.cc \
  native/kvm/devices/virtio/net/net.cc native/kvm/devices/virtio/fs/*.cc
build vsock_packets native/kvm/fuzz/vsock_packets_fuzz.cc "${vmm[@]}" native/kvm/devices/virtio/vsock/*.cc
build net_frames native/kvm/fuzz/net_frames_fuzz.cc "${vmm[@]}" native/kvm/devices/virtio/net/net.cc
build vhost_user native/kvm/fuzz/vhost_user_fuzz.cc native/kvm/vstate/memory.cc native/kvm/error.cc \
  native/kvm/devices/virtio/fs/vhost_user.cc
build agent_frames guest/agent/fuzz/frames_fuzz.c guest/agent/channel.c guest/agent/spec.c guest/agent/util.c
build control_messages native/kvm/fuzz/control_messages_fuzz.cc native/kvm/control/messages.cc native/kvm/control/wire.cc \
  native/kvm/error.cc
build snapshot_state native/kvm/fuzz/snapshot_state_fuzz.cc native/kvm/snapshot/{crc64,file_io,snapshot_file}.cc \
  native/kvm/vstate/vcpu_state.cc native/kvm/vstate/vm_state.cc "${vmm[@]}" native/kvm/devices/virtio/mmio.cc \
  native/kvm/devices/virtio/rng/rng.cc native/kvm/devices/legacy/serial.cc

corpus_of() {
  case "$1" in agent_frames) echo guest/agent/fuzz/corpus ;; *) echo "native/kvm/fuzz/corpus/$1" ;; esac
}
status=0
for name in virtio_mmio vsock_packets net_frames vhost_user agent_frames control_messages snapshot_state; do
  [ -z "$only" ] || [ "$only" = "$name" ] || continue
  fresh="$out/corpus/$name"
  mkdir -p "$fresh"
  log="$out/$name.log"
  # -rss_limit: each input maps guest RAM plus its 4 GiB guard (address space, not memory).
  if "$out/$name" "${limit[@]}" -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$out/crashes/$name-" \
       "$fresh" "$(corpus_of "$name")" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  printf '%-14s %-6s inputs %-10s execs/s %-7s coverage %s edges\n' "$name" "$result" "$runs" "$speed" "$cov"
  [ "$result" = ok ] || tail -40 "$log" >&2
done
exit $status
