#!/bin/bash
# Build (once) the kernel + initramfs of the nested-KVM rig and print the directory holding
# them (vmlinuz, initrd.gz). The rig is a QEMU TCG VM with an emulated AMD SVM CPU: its
# kernel loads kvm_amd, so /dev/kvm exists inside even where the host has none.
# Idempotent: a cached build is reused; it is keyed by kernel version and this file's hash
# (the guest's /init lives below), so editing this file rebuilds.
set -euo pipefail

die() { echo "rig setup: $*" >&2; exit 1; }
# Progress only for people watching; CI logs stay clean.
say() { if [ -t 2 ]; then echo "rig setup: $*" >&2; fi; }
need() { command -v "$1" >/dev/null 2>&1 ||
  die "missing '$1': apt-get install --no-install-recommends $2"; }

need apt-get apt
need apt-cache apt
need dpkg-deb dpkg
need cpio cpio
need gzip gzip
need sha256sum coreutils
need busybox busybox-static
# A dynamic busybox would need the host's libc inside the initramfs.
if [[ $(LC_ALL=C ldd "$(command -v busybox)" 2>&1) != *"not a dynamic"* ]]; then
  die "busybox is not static: apt-get install --no-install-recommends busybox-static"
fi

# Order matters: busybox insmod resolves no dependencies.
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
  virtio_console netfs fscache 9pnet 9pnet_virtio 9p overlay irqbypass ccp kvm kvm-amd
  virtio_blk crc16 crc32c_generic mbcache jbd2 ext4   # run.sh --disk
  failover net_failover virtio_net tun)               # a NIC, which passt and pasta need; pasta's tap

cache=${VMRUN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vmrun}/rig
mkdir -p "$cache/debs"
cache=$(cd "$cache" && pwd -P)   # absolute: we cd below, and print paths for others
self_hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)

# Fast path: a build of this setup.sh used since apt's lists last changed (apt-cache costs
# ~0.35 s, a tenth of a whole rig run).
dir=$(find "$cache" -mindepth 1 -maxdepth 1 -name "6.1.0-*-amd64-$self_hash" \
  -newer /var/lib/apt/lists 2>/dev/null | sort -V | tail -n1 || true)
if [ -n "$dir" ] && [ -f "$dir/initrd.gz" ]; then touch "$dir"; echo "$dir"; exit 0; fi

# Newest generic 6.1 kernel apt knows. The cloud flavour lacks 9p, so only "-amd64" will do.
pkg=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
  grep -E '^linux-image-6\.1\.0-[0-9]+-amd64$' | sort -V | tail -n1 || true)
if [ -z "$pkg" ]; then
  # Offline or no apt lists: any earlier build of this setup.sh will do.
  dir=$(find "$cache" -mindepth 1 -maxdepth 1 -name "6.1.0-*-amd64-$self_hash" | sort -V |
    tail -n1 || true)
  [ -n "$dir" ] || die "apt knows no linux-image-6.1.0-*-amd64 (Debian 12 sources needed; apt-get update?)"
  echo "$dir"; exit 0
fi
kver=${pkg#linux-image-}
out=$cache/$kver-$self_hash
# The mtime marks the last use: see the pruning below.
if [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ]; then touch "$out"; echo "$out"; exit 0; fi

tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

deb=$(find "$cache/debs" -name "${pkg}_*.deb" | tail -n1 || true)
if [ -z "$deb" ]; then
  say "downloading $pkg"
  mkdir "$tmp/dl"
  # Sandbox user _apt cannot write to a root-only cache; root needs no sandbox here.
  (cd "$tmp/dl" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >"$tmp/apt.log" 2>&1) ||
    { cat "$tmp/apt.log" >&2; die "apt-get download $pkg failed"; }
  rm -f "$cache/debs/"linux-image-*.deb   # older kernels are dead weight
  deb=$cache/debs/$(basename "$tmp"/dl/*.deb)
  mv "$tmp"/dl/*.deb "$deb"
fi

say "building initramfs for $kver"
pats=("./boot/vmlinuz-$kver" "./boot/config-$kver")
for m in "${modules[@]}"; do pats+=("./lib/modules/$kver/*/$m.ko*"); done
mkdir "$tmp/x"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards "${pats[@]}" ||
  die "unpacking $deb failed"

root=$tmp/root
mkdir -p "$root"/{bin,lib/modules,proc,sys,dev,priv,lower,upper,newroot}
for m in "${modules[@]}"; do
  f=$(find "$tmp/x/lib/modules" -name "$m.ko" -o -name "$m.ko.*" | head -n1)
  [ -n "$f" ] || die "module $m not in $pkg"
  # Debian 12 ships plain .ko; later kernels compress them, and busybox insmod may not cope.
  case $f in
    *.ko) cp "$f" "$root/lib/modules/$m.ko" ;;
    *.ko.xz) need xz xz-utils; xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
    *.ko.zst) need zstd zstd; zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
    *.ko.gz) gzip -dc "$f" >"$root/lib/modules/$m.ko" ;;
    *) die "unknown module format: $f" ;;
  esac
done
echo "${modules[*]}" >"$root/lib/modules/order"
cp "$(command -v busybox)" "$root/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done

# The guest's PID 1. run.sh's private share (tag "priv") holds its instructions:
#   mounts     lines "TAG PATH": read-write host shares to mount over PATH, in order
#   inner.sh   run by the host's bash inside the chroot; it runs the command, writes rc
# Anything that goes wrong before the command runs lands in priv/error (run.sh exits 125).
cat >"$root/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

bye() { sync; poweroff -f; sleep 10; }
fail() {
  echo "rig init: $*"
  [ -d /priv/ok ] && echo "$*" >/priv/error
  bye
}
# A failure is reported once the private share is up (if it can be), so run.sh can say why.
modfail=
for m in $(cat /lib/modules/order); do
  insmod "/lib/modules/$m.ko" 2>/dev/null ||
    modfail=${modfail:-"insmod $m failed ($(dmesg | tail -n1 | sed "s/^[^]]*] //"))"}
done

o=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $o,cache=mmap priv /priv || fail "mounting the private share failed ($modfail)"
mkdir /priv/ok 2>/dev/null || fail "the private share is not writable"
[ -z "$modfail" ] || fail "$modfail"

# The host's / read-only, made writable (throw-away) by an overlay. Loose caching suits a view
# nobody writes through, and starts node -e 1 cold in ~0.9 s instead of ~1.5 s.
mount -t 9p -o $o,cache=loose,ro host /lower || fail "mounting the host's / failed"
mount -t tmpfs -o mode=755 tmpfs /upper && mkdir /upper/u /upper/w || fail "tmpfs failed"
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay /newroot ||
  fail "overlay on the host's / failed"
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp || fail "tmpfs on /tmp failed"
# What udev/systemd would add to /dev: bash's <(...) needs /dev/fd, tools use /dev/std*, ptys.
ln -s /proc/self/fd /dev/fd && ln -s fd/0 /dev/stdin && ln -s fd/1 /dev/stdout &&
  ln -s fd/2 /dev/stderr || fail "populating /dev failed"
mkdir -p /dev/shm /dev/pts && mount -t tmpfs -o mode=1777 tmpfs /dev/shm &&
  mount -t devpts -o ptmxmode=0666,newinstance devpts /dev/pts || fail "/dev/shm, /dev/pts failed"
for d in proc sys dev; do mount -o rbind /$d /newroot/$d || fail "bind /$d failed"; done

# Read-write shares (checkout, cache, this run's private dir), parents before children.
# A 9p tag mounts only once: the private share, already on /priv, is bound instead. A "cached"
# directory, one the command only reads, is shown from the loosely cached read-only view of the
# host's / with a throw-away layer on top: under TCG each uncached 9p lookup costs milliseconds,
# and loading tap's modules from node_modules made ~20000 of them.
n=0
while read -r tag path; do
  mkdir -p "/newroot$path" || fail "no mount point $path"
  case $tag in
    priv) mount --bind /priv "/newroot$path" ;;
    cached) n=$((n + 1)) && mkdir /upper/c$n /upper/c$n-w &&
      mount -t overlay -o "lowerdir=/lower$path,upperdir=/upper/c$n,workdir=/upper/c$n-w" overlay "/newroot$path" ;;
    *) mount -t 9p -o $o,cache=mmap "$tag" "/newroot$path" ;;
  esac || fail "mounting $tag on $path failed"
done </priv/mounts

# /dev/kvm is the point of the rig: insist on it.
i=0; while [ ! -c /dev/kvm ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -c /dev/kvm ] || fail "/dev/kvm did not appear"

# The command's output goes to the virtio port named "out", which run.sh streams: no kernel
# messages, no tty (so no CRs and no ^C echo), no markers to strip.
port=
i=0; while [ -z "$port" ] && [ $i -lt 50 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = out ] && port=/dev/${p##*/}
  done
  [ -n "$port" ] || sleep 0.1; i=$((i + 1))
done
[ -c "$port" ] || fail "virtio port 'out' did not appear"

privpath=$(tail -n1 /priv/mounts | cut -d' ' -f2-)
# Through a pipe: a virtio port opens only once, and programs reopen /dev/stdout and friends.
# In a mount namespace of its own whose root is /newroot, moved there as switch_root does: a mere
# chroot would bar user namespaces (unshare(CLONE_NEWUSER) refuses chrooted callers), which an
# unprivileged VMM's jail needs.
env -i unshare -m sh -c 'cd /newroot && mount -o move . / && exec chroot . /bin/bash "$0" "$1"' \
  "$privpath/inner.sh" "$privpath" </dev/null 2>&1 | cat >"$port"
[ -f /priv/rc ] || [ -f /priv/error ] || fail "the command left no exit status (no host /bin/bash?)"
bye
INIT
chmod 755 "$root/init"

(cd "$root" && find . -print0 | LC_ALL=C sort -z |
  cpio -0 -o -H newc -R 0:0 --quiet | gzip -9n >"$tmp/initrd.gz") || die "cpio failed"
mkdir "$tmp/out"
mv "$tmp/initrd.gz" "$tmp/out/initrd.gz"
mv "$tmp/x/boot/vmlinuz-$kver" "$tmp/out/vmlinuz"

# Also the uncompressed kernel, which QEMU boots through PVH: under TCG that skips ~2 s of
# firmware, real-mode setup and decompression. Best effort: run.sh falls back to vmlinuz.
extract_vmlinux() {  # BZIMAGE OUT
  local z=$1 setup off len size
  u32() { od -An -tu4 -j "$1" -N4 "$z" | tr -d ' '; }
  # The payload's place is in the bzImage header (boot protocol >= 2.08).
  setup=$(od -An -tu1 -j $((0x1f1)) -N1 "$z" | tr -d ' '); [ "$setup" != 0 ] || setup=4
  off=$(( (setup + 1) * 512 + $(u32 $((0x248))) )); len=$(u32 $((0x24c)))
  # The kernel build appends the decompressed size (4 bytes) to the compressed stream.
  size=$(u32 $((off + len - 4)))
  case $(od -An -tx1 -j "$off" -N4 "$z" | tr -d ' ') in
    fd377a58) tail -c +$((off + 1)) "$z" | head -c "$len" | xz -dc --single-stream ;;
    28b52ffd) tail -c +$((off + 1)) "$z" | head -c $((len - 4)) | zstd -qdc ;;
    *) return 1 ;;
  esac >"$2" 2>/dev/null
  [ "$(stat -c %s "$2")" = "$size" ] && [ "$(od -An -c -N4 "$2" | tr -d ' ')" = 177ELF ]
}
if grep -q '^CONFIG_PVH=y' "$tmp/x/boot/config-$kver" &&
  extract_vmlinux "$tmp/out/vmlinuz" "$tmp/vmlinux"; then
  mv "$tmp/vmlinux" "$tmp/out/vmlinux"
fi
# Another setup may have won the race; its result is as good as ours.
mv -T "$tmp/out" "$out" 2>/dev/null || [ -f "$out/initrd.gz" ] || die "cannot create $out"
# Builds of other kernels or setup.sh versions unused for a week are dead weight. (Not sooner:
# checkouts with different setup.sh versions may share this cache.)
find "$cache" -mindepth 1 -maxdepth 1 -name '6.1.0-*' -mtime +7 -exec rm -rf {} + 2>/dev/null || true
say "ready: $out"
echo "$out"
