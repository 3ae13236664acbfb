#!/usr/bin/env bash
# Reproduces the README's VM-against-container figures in one command: builds what they need,
# then runs `vmrun bench` on the busybox and python test images (in the nested-KVM rig where this
# host has no KVM; directly where it has) and writes each image's table, JSON and chart to
# bench/results/<image>.{txt,json,svg}.
#   bash bench/publish.sh [-n RUNS] [extra vmrun bench options...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=bench/results
[ $# -gt 0 ] || set -- -n 10
mkdir -p "$out"
npx node-gyp rebuild >/dev/null
npx tsc -p .
bash images/agent/build.sh >/dev/null
busybox="oci:$(bash test/fixtures/build-images.sh)/busybox:latest"
python="oci:$(bash test/fixtures/build-python.sh):latest"
for image in busybox python; do
  case $image in
    busybox) ref=$busybox; command=(true) ;;
    python) ref=$python; command=(python3 -c pass) ;;
  esac
  # The rig's /tmp is its own and the working directory is shared: results land in $out directly.
  # The JSON is written inside the rig, where stdout is not mixed with progress on stderr.
  bash test/rig/run.sh -- bash -c 'json=$1; shift; exec node dist/src/cli/main.js bench "$@" >"$json"' \
    bench "$out/$image.json" "$ref" "$@" --json --chart "$out/$image.svg" -- "${command[@]}"
  node -e '
    const { formatTable } = require("./dist/src/bench/table");
    process.stdout.write(formatTable(require(process.argv[1])));
  ' "$root/$out/$image.json" | tee "$out/$image.txt"
done
