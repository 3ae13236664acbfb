#!/usr/bin/env bash
# Builds passt and pasta (each run's user-mode network) from Debian 13's source package: the
# upstream tarball and Debian's patches, named with their SHA-256 in ./pinned, plus ./*.patch of
# our own. Debian 12's passt (2023-03) resets a TCP connection the guest opened about 24 s in when
# the host side has sent it nothing (a long upload; fixed upstream in 4e73e9b), and Debian 13's
# binary needs a newer glibc. vmrun prefers this build to the passt on PATH
# (src/network/user-net.ts). Prints the directory holding passt and pasta, cached outside the
# repository under a key of the pinned sources, the patches and this script.
#   build.sh          build if needed (downloads the sources once), print the directory
#   build.sh --path   print the directory the build would use, build nothing
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../cache.sh"
die() { echo "build-passt: $*" >&2; exit 1; }

upstream=$(awk 'NR == 1 { print $1 }' "$here/pinned")
version=${upstream#passt_}
version=${version%.orig.tar.xz}
out="$(vmrun_cache passt)/$version-$(cat "$here/pinned" "$here"/*.patch "$0" | content_key)"
if [ "${1:-}" = "--path" ]; then echo "$out"; exit 0; fi
exit_if_cached "$out"

for tool in curl make gcc patch; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: apt-get install curl build-essential patch"
done
progress() { if [ -t 2 ]; then printf '\r\033[K[passt %s] %s' "$version" "$1" >&2; fi; }
work=$(mktemp -d "$(vmrun_cache passt)/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT

while read -r file sha256; do
  url="http://deb.debian.org/debian/pool/main/p/passt/$file"
  progress "downloading $file"
  curl -fsSL --retry 3 -o "$work/$file" "$url" || die "downloading $url failed: check the connection to deb.debian.org"
  # Plain HTTP, as apt uses it: the pinned digest is what vouches for the bytes.
  echo "$sha256  $work/$file" | sha256sum --check --status || die "$url does not match the SHA-256 in $here/pinned"
  tar -C "$work" -xJf "$work/$file"
done < "$here/pinned"
src=$(echo "$work"/passt-*/)
progress "patching"
while read -r p; do
  patch -s -d "$src" -p1 < "$work/debian/patches/$p" || die "Debian's patch $p does not apply"
done < <(grep -v '^#' "$work/debian/patches/series" | grep .)
for p in "$here"/*.patch; do
  patch -s -d "$src" -p1 < "$p" || die "$p does not apply"
done

progress "compiling"
# On x86_64 passt re-executes itself as passt.avx2 where the CPU has AVX2, as Debian's does. One
# make per target: built together, passt would inherit passt.avx2's -mavx2.
targets=(passt)
[ "$(uname -m)" = x86_64 ] && targets+=(passt.avx2)
for t in "${targets[@]}"; do
  if ! make -C "$src" "$t" >>"$work/build.log" 2>&1; then
    [ -t 2 ] && echo >&2
    tail -n 40 "$work/build.log" >&2
    die "compiling $t failed (log above)"
  fi
done
mkdir "$work/bin"
for t in "${targets[@]}"; do
  cp "$src/$t" "$work/bin/$t"
  ln -s "$t" "$work/bin/${t/passt/pasta}"  # pasta is passt under another name
done
mv -T "$work/bin" "$out"
[ -t 2 ] && printf '\r\033[K' >&2
echo "$out"
