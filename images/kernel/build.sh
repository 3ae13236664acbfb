#!/usr/bin/env bash
# Builds the vmrun guest kernel from Debian's linux-source-6.1 and microvm.config, and caches it
# outside the repository under a key of (source version, config, this script). Prints the cache
# directory (holding bzImage, vmlinux and config) on stdout; progress goes to stderr on a TTY only.
#   build.sh            build if needed, print the directory
#   build.sh --path     print the directory the build would use, build nothing
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fragment="$here/microvm.config"
tarball=/usr/src/linux-source-6.1.tar.xz
cache="${VMRUN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vmrun}/kernel"

die() { echo "build-kernel: $*" >&2; exit 1; }
[ -f "$tarball" ] || die "$tarball is missing; install it with: apt-get install linux-source-6.1"
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null) || die "linux-source-6.1 is not installed (apt-get install linux-source-6.1)"
key=$(cat "$fragment" "$0" | sha256sum | cut -c1-16)
out="$cache/$srcver-$key"

if [ "${1:-}" = "--path" ]; then echo "$out"; exit 0; fi
if [ -f "$out/bzImage" ] && [ -f "$out/vmlinux" ]; then echo "$out"; exit 0; fi

for tool in make gcc flex bison bc lz4; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; install build-essential flex bison bc lz4 libelf-dev"
done

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log="$work/build.log"

# On a TTY, one status line that rewrites itself; otherwise silence unless the build fails.
progress() { if [ -t 2 ]; then printf '\r\033[K[kernel %s] %s' "$srcver" "$1" >&2; fi; }
run_logged() {
  if ! "$@" >>"$log" 2>&1; then
    [ -t 2 ] && echo >&2
    tail -n 40 "$log" >&2
    die "failed: $* (full log above)"
  fi
}

progress "unpacking $tarball"
tar -C "$work" -xJf "$tarball"
src="$work/linux-source-6.1"

progress "configuring"
run_logged make -C "$src" tinyconfig
run_logged "$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$fragment"
run_logged make -C "$src" olddefconfig

# An option that Kconfig silently dropped (an unmet dependency) is a broken config: say which.
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$fragment" | while read -r line; do
  grep -qx "$line" "$src/.config" || echo "$line"
done)
[ -z "$missing" ] || die "these options did not survive olddefconfig: $(echo $missing)"
still_on=$(sed -n 's/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1/p' "$fragment" | while read -r opt; do
  if grep -q "^$opt=" "$src/.config"; then echo "$opt"; fi
done)
[ -z "$still_on" ] || die "these options are selected by others and cannot be turned off: $(echo $still_on)"

jobs=$(nproc)
if [ -t 2 ]; then
  n=0
  set +o pipefail
  make -C "$src" -j"$jobs" bzImage vmlinux 2>&1 | tee -a "$log" | while read -r a b _; do
    case "$a" in CC|LD|AR|AS) n=$((n + 1)); progress "$(printf '%5d  %s %s' "$n" "$a" "$b")";; esac
  done
  status=${PIPESTATUS[0]}
  set -o pipefail
  echo >&2
  [ "$status" -eq 0 ] || { tail -n 40 "$log" >&2; die "kernel build failed"; }
else
  run_logged make -C "$src" -j"$jobs" bzImage vmlinux
fi

stage="$work/out"
mkdir "$stage"
cp "$src/arch/x86/boot/bzImage" "$src/vmlinux" "$stage/"
cp "$src/.config" "$stage/config"
rm -rf "$out"
mv "$stage" "$out"
echo "$out"
