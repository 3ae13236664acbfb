#!/usr/bin/env bash
# Reproduces the README's VM-against-container figures in one command: builds what they need,
# then runs `vmrun bench` on the busybox test image (in the nested-KVM rig where this host has no
# KVM; directly where it has) and writes the table, the JSON and the chart to bench/results/.
#   bash bench/publish.sh [-n RUNS] [extra vmrun bench options...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=bench/results
[ $# -gt 0 ] || set -- -n 10
mkdir -p "$out"
npx node-gyp rebuild >/dev/null
npx tsc -p .
images=$(bash test/fixtures/build-images.sh)
bash images/agent/build.sh >/dev/null
# The rig's /tmp is its own and the working directory is shared: results land in $out directly.
# runc needs cgroups, which the rig's init does not mount.
bash test/rig/run.sh -- bash -c '
  ls /sys/fs/cgroup | grep -q . || mount -t cgroup2 cgroup2 /sys/fs/cgroup
  node dist/src/cli/main.js bench "$@" --json --chart "'"$out"'/bench.svg" > "'"$out"'/bench.json"
' bench "oci:$images/busybox:latest" "$@"
node -e '
  const { formatTable } = require("./dist/src/bench/table");
  process.stdout.write(formatTable(require(process.argv[1])));
' "$root/$out/bench.json" | tee "$out/bench.txt"
