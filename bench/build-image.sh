#!/usr/bin/env bash
# Builds the image the unpack benchmark unpacks, from this host's own files: two gzip layers, the
# Python 3.11 standard library (~54 MB, 1500 files) and Perl's (~21 MB), as umoci writes them.
# Prints the OCI layout's path; cached by the hash of this script.
set -euo pipefail
die() { echo "build-image: $*" >&2; exit 1; }
command -v umoci >/dev/null || die "umoci is missing: apt-get install umoci"
for d in /usr/lib/python3.11 /usr/share/perl; do [ -d "$d" ] || die "$d is missing: apt-get install python3 perl"; done

source "$(dirname "$0")/../images/cache.sh"
cache=$(vmrun_cache bench-images)
out="$cache/stdlibs-$(content_key <"$0")"
exit_if_cached "$out"
partial=$(mktemp -d "$cache/.stdlibs.XXXXXX")
bundle=$(mktemp -d)
trap 'rm -rf "$partial" "$bundle"' EXIT
quiet() { "$@" >/dev/null 2>&1 || die "failed: $*"; }
quiet umoci init --layout "$partial/layout"
quiet umoci new --image "$partial/layout:latest"
for dir in /usr/lib/python3.11 /usr/share/perl; do
  quiet umoci unpack --image "$partial/layout:latest" "$bundle/b"
  mkdir -p "$bundle/b/rootfs$(dirname "$dir")"
  cp -a "$dir" "$bundle/b/rootfs$dir"
  quiet umoci repack --image "$partial/layout:latest" "$bundle/b"
  rm -rf "$bundle/b"
done
quiet umoci gc --layout "$partial/layout"
mv "$partial/layout" "$out"
echo "$out"
