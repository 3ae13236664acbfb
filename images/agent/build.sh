#!/usr/bin/env bash
# Builds the in-guest agent (guest/agent: a static C program, PID 1 of the VM) and the agent
# initramfs (an uncompressed newc cpio: /init is the agent), and prints the initramfs's path.
# Cached outside the repository by the hash of the agent's sources and this script.
#   build.sh          build if needed, print the initramfs path; nothing else on success
#   build.sh --binary build if needed, print the path of the agent binary itself (the container
#                     runtime runs it under runc), kept beside the initramfs
#   build.sh --path   print the initramfs path the build would use, build nothing
#   build.sh --test   build and run the agent's unit tests (needs root: they chroot and mknod);
#                     TAP on stdout, non-zero exit status when a test fails
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../guest/agent" && pwd)
source "$here/../cache.sh"
die() { echo "build-agent: $*" >&2; exit 1; }

# The toolchain and every static library of the link, with the Debian package that ships each.
# Checked only when something is compiled: a cached agent is found without them.
need_toolchain() {
  local pair lib pkg
  command -v gcc >/dev/null || die "gcc is missing: apt-get install build-essential"
  command -v pkg-config >/dev/null || die "pkg-config is missing: apt-get install pkg-config"
  command -v cpio >/dev/null || die "cpio is missing: apt-get install cpio"
  for pair in archive:libarchive-dev nettle:nettle-dev acl:libacl1-dev lzma:liblzma-dev zstd:libzstd-dev \
              lz4:liblz4-dev bz2:libbz2-dev z:zlib1g-dev xml2:libxml2-dev icuuc:libicu-dev icudata:libicu-dev; do
    lib=${pair%%:*} pkg=${pair#*:}
    [ -f "$(gcc -print-file-name="lib$lib.a")" ] || die "lib$lib.a is missing (static link): apt-get install $pkg"
  done
  pkg-config --exists libarchive || die "libarchive's pkg-config file is missing: apt-get install libarchive-dev"
  # gnu11: C11 plus the GNU/Linux interfaces (signalfd, pipe2, strchrnul) the agent is made of.
  cflags=(-std=gnu11 -O2 -Wall -Wextra -Wshadow -Wformat=2 -ffunction-sections -fdata-sections $(pkg-config --cflags libarchive))
  libs=($(pkg-config --static --libs libarchive) -licuuc -licudata -lstdc++ -lm -pthread)
}

sources=()
for f in "$src"/*.c; do [ "$(basename "$f")" = main.c ] || sources+=("$f"); done

if [ "${1:-}" = "--test" ]; then
  need_toolchain
  [ "$(id -u)" = 0 ] || die "--test needs root: the tests chroot, mknod and chown"
  command -v python3 >/dev/null || die "python3 is missing (it writes the test layers): apt-get install python3"
  command -v zstd >/dev/null || die "zstd is missing (it compresses test layers): apt-get install zstd"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  gcc -static "${cflags[@]}" -I"$src" -o "$work/agent-test" "$src/tests/agent_test.c" "${sources[@]}" "${libs[@]}" \
    || die "building the tests failed"
  "$work/agent-test" "$src/tests/layers.py" "$work"
  exit $?
fi

[ $# = 0 ] || [ "$1" = "--binary" ] || [ "$1" = "--path" ] || die "usage: build.sh [--binary | --path | --test]"
cache=$(vmrun_cache agent)
key=$(cd "$src" && cat $(ls *.c *.h | LC_ALL=C sort) "$here/build.sh" | content_key)
out="$cache/agent-$key.cpio"
binary="$cache/agent-$key"
print() { if [ "${1:-}" = "--binary" ]; then echo "$binary"; else echo "$out"; fi; }
if [ "${1:-}" = "--path" ]; then echo "$out"; exit 0; fi
if [ -f "$out" ] && [ -f "$binary" ]; then print "$@"; exit 0; fi

need_toolchain
# Staged in $TMPDIR: the cache may sit on a filesystem without device nodes (9p in the rig).
stage=$(mktemp -d)
partial="$cache/.agent-$key.$$"
trap 'rm -rf "$stage" "$partial" "$partial.bin"' EXIT
gcc -static -s -Wl,--gc-sections "${cflags[@]}" -o "$stage/agent" "$src/main.c" "${sources[@]}" "${libs[@]}" \
  || die "building the agent failed"
mkdir -p "$stage/root/dev" "$stage/root/proc" "$stage/root/sys" "$stage/root/mnt" "$stage/root/run" "$stage/root/tmp"
# The kernel opens /dev/console for init's stdio before anything could mount devtmpfs.
mknod -m 600 "$stage/root/dev/console" c 5 1 || die "mknod /dev/console failed (run as root)"
install -m 0755 "$stage/agent" "$stage/root/init"
(cd "$stage/root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) > "$partial"
install -m 0555 "$stage/agent" "$partial.bin"
mv "$partial.bin" "$binary"
mv "$partial" "$out"
print "$@"
