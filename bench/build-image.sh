#!/usr/bin/env bash
# Builds an image the unpack benchmark unpacks, from this host's own files, as umoci writes them
# (gzip layers), and prints the OCI layout's path; cached by the hash of this script and NAME.
#   build-image.sh [stdlibs]  two layers: the Python 3.11 standard library (~54 MB, 1500 files)
#                             and Perl's (~21 MB)
#   build-image.sh big        about 1 GB in 12 layers, shaped like the official python:3.10:
#                             big layers of programs and libraries, trees of small files
#                             (headers, locales, documentation), a layer that deletes (as
#                             `rm -rf` in a Dockerfile does: whiteouts), and tiny layers
set -euo pipefail
die() { echo "build-image: $*" >&2; exit 1; }
name=${1:-stdlibs}
# One layer per line: the host directories it copies, or `-DIR` for one it deletes.
case $name in
  stdlibs) layers=('/usr/lib/python3.11' '/usr/share/perl') ;;
  big) layers=('/usr/share/locale /usr/share/i18n' '/usr/bin /usr/sbin' '/usr/lib/gcc' '/usr/include'
               '/usr/lib/python3.11' '/usr/lib/python3' '/usr/share/perl /usr/lib/x86_64-linux-gnu/perl'
               '/usr/share/doc' '/usr/lib/git-core' '-/usr/share/doc' '/etc/debian_version' '/etc/hostname') ;;
  *) die "unknown image $name: stdlibs or big" ;;
esac
command -v umoci >/dev/null || die "umoci is missing: apt-get install umoci"
for layer in "${layers[@]}"; do
  for dir in $layer; do [ "${dir#-}" != "$dir" ] || [ -e "$dir" ] || die "$dir is missing on this host"; done
done

source "$(dirname "$0")/../images/cache.sh"
cache=$(vmrun_cache bench-images)
out="$cache/$name-$({ cat "$0"; echo "$name"; } | content_key)"
exit_if_cached "$out"
partial=$(mktemp -d "$cache/.$name.XXXXXX")
bundle=$(mktemp -d)
trap 'rm -rf "$partial" "$bundle"' EXIT
quiet() { "$@" >/dev/null 2>&1 || die "failed: $*"; }
quiet umoci init --layout "$partial/layout"
quiet umoci new --image "$partial/layout:latest"
quiet umoci unpack --image "$partial/layout:latest" "$bundle/b"
for layer in "${layers[@]}"; do
  for dir in $layer; do
    if [ "${dir#-}" != "$dir" ]; then
      rm -rf "$bundle/b/rootfs${dir#-}"
    else
      mkdir -p "$bundle/b/rootfs$(dirname "$dir")"
      cp -a "$dir" "$bundle/b/rootfs$dir"
    fi
  done
  quiet umoci repack --refresh-bundle --image "$partial/layout:latest" "$bundle/b"
done
quiet umoci gc --layout "$partial/layout"
mv "$partial/layout" "$out"
echo "$out"
