#!/usr/bin/env bash
# Regenerates src/shim/gen/ (TypeScript, @bufbuild/protobuf) from the .proto files of the
# containerd we test against, Debian 12's 1.6.20 (golang-github-containerd-containerd-dev and
# golang-github-containerd-cgroups-dev), and ttrpc.proto here. The output is committed: building
# vmrun needs neither protoc nor those packages.
#   apt-get install protobuf-compiler golang-github-containerd-containerd-dev && bash src/shim/proto/generate.sh
# gogoproto's options only steer Go code generation: they are stripped, so that the generated
# descriptors do not import gogo.proto.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
go=/usr/share/gocode/src
need=(
  github.com/containerd/containerd/runtime/v2/task/shim.proto
  github.com/containerd/containerd/api/types/mount.proto
  github.com/containerd/containerd/api/types/task/task.proto
  github.com/containerd/containerd/api/events/task.proto
  github.com/containerd/cgroups/v2/stats/metrics.proto
)
command -v protoc >/dev/null || { echo "generate.sh: no protoc: apt-get install protobuf-compiler" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for p in "${need[@]}"; do
  [ -f "$go/$p" ] || { echo "generate.sh: no $go/$p: apt-get install golang-github-containerd-containerd-dev" >&2; exit 1; }
  mkdir -p "$tmp/$(dirname "$p")"
  sed -E -e '\%^[[:space:]]*import (weak )?"(gogoproto|github.com/containerd/containerd/protobuf/plugin)/%d' \
    -e '/^[[:space:]]*option \((gogoproto|containerd\.plugin)\./d' \
    -e 's/ *\[\((gogoproto|containerd\.plugin)\.[^]]*\]//g' "$go/$p" >"$tmp/$p"
done
cp "$here/ttrpc.proto" "$tmp/ttrpc.proto"
rm -rf "$root/src/shim/gen"
mkdir -p "$root/src/shim/gen"
protoc -I "$tmp" -I /usr/include --plugin=protoc-gen-es="$root/node_modules/.bin/protoc-gen-es" \
  --es_out="$root/src/shim/gen" --es_opt=target=ts,import_extension=none "${need[@]}" ttrpc.proto
