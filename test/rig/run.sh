#!/bin/bash
# Run a command where /dev/kvm works: directly on a KVM host, otherwise inside the nested-KVM
# rig (a QEMU TCG VM with an emulated AMD SVM CPU, see README.md), in a chroot of this host's /
# and in the caller's working directory.
#   run.sh [--mem MiB] [--cpus N] [--timeout SECONDS] [--cached DIR]... [--disk GiB:DIR] [--own-cache GiB] -- CMD [ARGS...]
# --cached DIR: the command only reads DIR (node_modules, build output), so the rig shows it
# through a cached read-only view with a throw-away layer on top: far fewer slow 9p round trips.
# --disk GiB:DIR: an empty ext4 disk of that size (sparse, on this host, thrown away after) on
# DIR inside the rig, for work that 9p makes too slow and a tmpfs would hold in memory (files
# written by a VMM or container are charged to its memory cgroup on a tmpfs, never written back).
# Exit status: CMD's; 124 when the wall-clock guard fired; 125 when the rig itself failed.
set -uo pipefail

usage() {
  echo "usage: run.sh [--mem MiB] [--cpus N] [--timeout SECONDS] [--cached DIR]... [--disk GiB:DIR] [--own-cache GiB] -- CMD [ARGS...]" >&2
  exit 125
}
rigfail() { echo "rig: $*" >&2; exit 125; }

# One CPU by default: with two, about one nested guest boot in six crashed or hung at a random
# point (a triple fault, a stall mid-printk) while the same boots on one CPU all passed; QEMU's
# emulated SVM seems not to survive a nested vCPU moving between its CPUs.
mem=4096 cpus=1 tmo=3000 cached=() disk= owncache=
while [ $# -gt 0 ]; do
  case $1 in
    --mem) [ $# -ge 2 ] || usage; mem=$2; shift 2 ;;
    --cpus) [ $# -ge 2 ] || usage; cpus=$2; shift 2 ;;
    --timeout) [ $# -ge 2 ] || usage; tmo=$2; shift 2 ;;
    --cached) [ $# -ge 2 ] || usage; cached+=("$2"); shift 2 ;;
    --disk) [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*:/ ]] || usage; disk=$2; shift 2 ;;
    --own-cache) [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || usage; owncache=$2; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[ $# -gt 0 ] || usage
for n in "$mem" "$cpus" "$tmo"; do [[ $n =~ ^[1-9][0-9]*$ ]] || usage; done

# Hardware KVM here (a KVM host, or already inside the rig): no VM needed. An openable
# /dev/kvm is not enough: these machines' PVM flavour of KVM (no vmx/svm flag) opens, creates
# VMs and runs real-mode code, yet hangs a normal Linux guest in its decompressor.
# VMRUN_RIG_FORCE_VM=1 boots the rig anyway, to test the rig itself.
if [ -z "${VMRUN_RIG_FORCE_VM:-}" ] && grep -qw -e vmx -e svm /proc/cpuinfo &&
  (exec 3<>/dev/kvm) 2>/dev/null; then
  exec timeout -k 10 "$tmo" "$@"
fi

command -v qemu-system-x86_64 >/dev/null ||
  rigfail "missing qemu-system-x86_64: apt-get install --no-install-recommends qemu-system-x86"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kdir=$(bash "$here/setup.sh") || rigfail "setup.sh failed"

cache=${VMRUN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vmrun}
cache=$(cd "$cache" && pwd -P) || rigfail "no cache dir $cache"
cwd=$(pwd -P)
[[ $cwd$cache != *$'\n'* ]] || rigfail "paths with newlines are not supported"

# Private read-write share for this run: instructions in, exit status and logs out. Not under
# /tmp, which the guest hides behind its own tmpfs.
priv=$(mktemp -d "$cache/rig/run.XXXXXX") || rigfail "cannot create a run dir in $cache/rig"
qpid='' tpid=''
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  local p
  for p in $qpid $tpid; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$priv"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Argv, env and cwd travel as NUL-separated files: nothing is ever re-parsed by a shell.
printf '%s\0' "$@" >"$priv/args"
printf '%s\0' "$cwd" >"$priv/cwd"
{
  # Same PATH and HOME as the caller (HOME is writable inside: the guest's / is an overlay).
  printf '%s\0' "PATH=${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}" \
    "HOME=${HOME:-/root}" USER=root LOGNAME=root LANG=C.UTF-8 TERM=dumb \
    "VMRUN_CACHE_DIR=$cache"
  for n in $(compgen -e); do
    case $n in
      VMRUN_CACHE_DIR) ;;   # set above, resolved
      VMRUN_* | CI | TAP_* | NODE_OPTIONS) printf '%s=%s\0' "$n" "${!n}" ;;
    esac
  done
  printf '%s\0' VMRUN_RIG=1   # lets tests know they run nested (slowly)
} >"$priv/env"
cat >"$priv/inner.sh" <<'INNER'
# Run by the host's bash in the rig's chroot, with an empty environment.
d=$1
mapfile -d '' -t envv <"$d/env"
mapfile -d '' -t argv <"$d/args"
mapfile -d '' -t cwd <"$d/cwd"
for kv in "${envv[@]}"; do export "$kv"; done
cd -- "${cwd[0]}" || { echo "cannot cd to ${cwd[0]} inside the rig" >"$d/error"; exit 125; }
unset OLDPWD
# What a booted host has and the rig's init does not set up: loopback (local registries), a NIC
# with a default route (QEMU's, leading nowhere: see qargs), a
# cgroup hierarchy (runc), and /dev/kvm as udev leaves it (GROUP="kvm", MODE="0660"), so that a
# user in the kvm group can run VMs. /etc is the rig's throw-away copy.
ip link set lo up 2>/dev/null
# The block device QEMU gave the serial SERIAL, or nothing.
disk_by_serial() { local b; for b in /sys/block/vd*; do [ "$(cat "$b/serial" 2>/dev/null)" = "$1" ] && echo "/dev/${b##*/}"; done; }
if [ -f "$d/own-cache" ]; then
  # Mounted over the cache share, whose 9p mount stays underneath as the lower layer. This run's
  # private share lies inside the cache: it is bound again on top, or its files would stay here.
  dev=$(disk_by_serial owncache) && [ -n "$dev" ] && mkfs.ext4 -q -F "$dev" && mkdir -p /run/own-cache /run/priv &&
    mount "$dev" /run/own-cache && mkdir /run/own-cache/u /run/own-cache/w && mount --bind "$d" /run/priv &&
    mount -t overlay -o "lowerdir=$VMRUN_CACHE_DIR,upperdir=/run/own-cache/u,workdir=/run/own-cache/w" own-cache "$VMRUN_CACHE_DIR" &&
    mount --bind /run/priv "$d" ||
    { echo "cannot lay the --own-cache disk over $VMRUN_CACHE_DIR" >"$d/error"; exit 125; }
fi
ip link set eth0 up 2>/dev/null && ip addr add 10.99.0.15/24 dev eth0 && ip route add default via 10.99.0.2
[ -n "$(ls -A /sys/fs/cgroup 2>/dev/null)" ] || mount -t cgroup2 cgroup2 /sys/fs/cgroup
grep -q '^kvm:' /etc/group || echo 'kvm:x:994:' >>/etc/group
chown "0:$(grep '^kvm:' /etc/group | cut -d: -f3)" /dev/kvm && chmod 0660 /dev/kvm
# The container runtime's unpacked layers need what 9p lacks (device nodes, whiteouts, trusted
# xattrs, an overlay's upper layer): a tmpfs of the rig's own, kept for this run only.
mkdir -p "$VMRUN_CACHE_DIR/layer-dirs" && mount -t tmpfs -o mode=0755 rig-layer-dirs "$VMRUN_CACHE_DIR/layer-dirs"
# VM snapshots: their memory files are mapped, and each page fault on 9p is a round trip. They
# are also of this rig's CPU only. A tmpfs of the run's own, as a host's local disk would be.
mkdir -p "$VMRUN_CACHE_DIR/snapshots" && mount -t tmpfs -o mode=0755 rig-snapshots "$VMRUN_CACHE_DIR/snapshots"
if [ -f "$d/disk" ]; then
  dev=$(disk_by_serial scratch) && [ -n "$dev" ] &&
    mkdir -p "$(cat "$d/disk")" && mkfs.ext4 -q -F "$dev" && mount "$dev" "$(cat "$d/disk")" ||
    { echo "cannot make the --disk scratch disk" >"$d/error"; exit 125; }
fi
# exec, as on a KVM host: never a shell builtin or function of that name.
(exec -- "${argv[@]}")
echo $? >"$d/rc.tmp" && mv "$d/rc.tmp" "$d/rc"
INNER

# Read-write shares, parents first; the private dir last (the guest's init relies on it).
shares=()
[ "$cwd" = / ] || shares+=("$cwd")
[ "$cache" = "$cwd" ] || shares+=("$cache")
i=0
while read -r _ path; do
  echo "rw$i $path"; i=$((i + 1))
done < <(for p in "${shares[@]}"; do echo "${#p} $p"; done | sort -n) >"$priv/mounts"
for d in "${cached[@]}"; do
  d=$(cd "$d" 2>/dev/null && pwd -P) || rigfail "--cached: no directory $d"
  [[ $d != *$'\n'* ]] || rigfail "paths with newlines are not supported"
  echo "cached $d" >>"$priv/mounts"
done
echo "priv $priv" >>"$priv/mounts"

qesc() { printf '%s' "${1//,/,,}"; }   # QEMU option syntax doubles commas
virtfs() {  # TAG PATH [readonly=on]
  qargs+=(-virtfs "local,path=$(qesc "$2"),mount_tag=$1,security_model=none,multidevs=remap${3:+,$3}")
}
# The uncompressed kernel (PVH entry) boots ~2 s faster under TCG than the bzImage.
kernel=$kdir/vmlinux
[ -f "$kernel" ] || kernel=$kdir/vmlinuz
# shellcheck disable=SC2054  # commas belong to QEMU's option syntax
qargs=(
  -machine q35 -accel tcg -cpu max,+svm -m "$mem" -smp "$cpus"
  -nodefaults -no-user-config -display none -no-reboot
  -kernel "$kernel" -initrd "$kdir/initrd.gz"
  -append "console=ttyS0 quiet panic=-1"
  # Kernel and init messages go to a log, shown only when the rig fails.
  -chardev "file,id=con,path=$(qesc "$priv/console.log")" -serial chardev:con
  # The command's output: a virtio port written to a plain file that tail streams (a file
  # never pushes back, so nothing is lost when the guest powers off).
  -device virtio-serial-pci
  -chardev "file,id=out,path=$(qesc "$priv/out.log")" -device virtserialport,chardev=out,name=out
  # A NIC with a default route and nothing behind it (restrict=on): passt and pasta, each run's
  # network, model the guest's on the host's routable interface and refuse to run without one.
  -netdev user,id=nic,net=10.99.0.0/24,ipv6-prefix=fd99::,ipv6-prefixlen=64,restrict=on -device virtio-net-pci,netdev=nic
)
virtfs host / readonly=on
if [ -n "$disk" ]; then
  truncate -s "${disk%%:*}G" "$priv/disk.img" || rigfail "cannot create the --disk image"
  printf '%s' "${disk#*:}" >"$priv/disk"
  qargs+=(-drive "file=$(qesc "$priv/disk.img"),if=none,id=scratch,format=raw,cache=unsafe"
    -device virtio-blk-pci,drive=scratch,serial=scratch)
fi
if [ -n "$owncache" ]; then
  truncate -s "${owncache}G" "$priv/own-cache.img" && : >"$priv/own-cache" || rigfail "cannot create the --own-cache disk"
  qargs+=(-drive "file=$(qesc "$priv/own-cache.img"),if=none,id=owncache,format=raw,cache=unsafe"
    -device virtio-blk-pci,drive=owncache,serial=owncache)
fi
while read -r tag path; do [ "$tag" = cached ] || virtfs "$tag" "$path"; done <"$priv/mounts"

: >"$priv/out.log"
timeout -k 5 "$tmo" qemu-system-x86_64 "${qargs[@]}" </dev/null >"$priv/qemu.log" 2>&1 &
qpid=$!
tail -c +1 -s 0.2 -f --pid="$qpid" "$priv/out.log" &
tpid=$!
# Waiting in the wait builtin (not on a foreground tail) lets INT/TERM traps fire at once.
wait "$qpid"; qrc=$?
wait "$tpid"   # tail drains the rest, then sees QEMU gone
qpid='' tpid=''

if [ -f "$priv/rc" ]; then exit "$(cat "$priv/rc")"; fi
if [ "$qrc" = 124 ]; then echo "rig: timed out after ${tmo}s" >&2; exit 124; fi
if [ -f "$priv/error" ]; then
  echo "rig: $(cat "$priv/error")" >&2
else
  echo "rig: the VM ended (QEMU status $qrc) before the command finished" >&2
fi
# Enough context to see why, without a second run.
sed 's/^/rig qemu: /' "$priv/qemu.log" >&2
if [ -s "$priv/console.log" ]; then
  tail -n 20 "$priv/console.log" | tr -d '\r' | sed 's/^/rig console: /' >&2
else
  echo "rig: no console output (too little --mem?)" >&2
fi
exit 125
