#!/usr/bin/env bash
# Builds the probe initramfs (busybox, ./init and bin/vsock_echo compiled from vsock_echo.c, as a
# gzipped newc cpio) used by the boot tests and the boot benchmark, and prints its path. Cached by
# the hash of its inputs; rebuilt in about a second when they change.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
busybox=/bin/busybox
die() { echo "build-probe: $*" >&2; exit 1; }
[ -x "$busybox" ] && file -L "$busybox" 2>/dev/null | grep -q 'statically linked' \
  || die "a static busybox is needed at $busybox: apt-get install busybox-static"
command -v cpio >/dev/null || die "cpio is missing: apt-get install cpio"
command -v gcc >/dev/null || die "gcc is missing (for vsock_echo.c): apt-get install gcc libc6-dev"

source "$here/../cache.sh"
cache=$(vmrun_cache probe)
key=$(cat "$here/init" "$here/vsock_echo.c" "$0" "$busybox" | content_key)
out="$cache/probe-$key.cpio.gz"
exit_if_cached "$out"

# Staged in $TMPDIR: the cache may sit on a filesystem without device nodes (9p in the rig).
stage=$(mktemp -d)
partial="$cache/.probe-$key.$$"
trap 'rm -rf "$stage" "$partial"' EXIT
mkdir -p "$stage/root/bin" "$stage/root/proc" "$stage/root/sys" "$stage/root/dev"
cp "$busybox" "$stage/root/bin/busybox"
# The kernel opens /dev/console for init's stdio before anything could mount devtmpfs.
mknod -m 600 "$stage/root/dev/console" c 5 1 || die "mknod /dev/console failed (run as root)"
install -m 0755 "$here/init" "$stage/root/init"
gcc -static -Os -s -Wall -o "$stage/root/bin/vsock_echo" "$here/vsock_echo.c" || die "building vsock_echo.c failed"
(cd "$stage/root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9 > "$partial"
mv "$partial" "$out"
echo "$out"
