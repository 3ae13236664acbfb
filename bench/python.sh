#!/usr/bin/env bash
# The main job, side by side: python:3.10 running a line of Python in a microVM and in a runc
# container, with each one's startup time and memory (`vmrun bench`). The image comes from
# Docker Hub when it answers, otherwise from a stand-in built here from Debian's packages
# (test/fixtures/build-python.sh: the official image's layering and config); the script says
# which. Where this host has no usable KVM, it runs in the nested rig (test/rig/), slowly.
#   bash bench/python.sh [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
[ "${1:-}" = --runs ] && [ -n "${2:-}" ] && runs=$2
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/python.sh [--runs N]" >&2; exit 2; }

if node -e 'fetch("https://registry-1.docker.io/v2/", { signal: AbortSignal.timeout(5000) }).then(() => process.exit(0), () => process.exit(1))'; then
  image=python:3.10
  echo "python.sh: python:3.10 from Docker Hub" >&2
else
  image="oci:$(bash test/fixtures/build-python.sh):latest"
  echo "python.sh: Docker Hub does not answer; python:3.10's stand-in built from this machine's Debian packages ($image)" >&2
fi
exec bash test/rig/run.sh --cached node_modules --cached dist --cached build -- \
  node dist/src/cli/main.js bench --runs "$runs" --density 2 --runtimes container,vmrun "$image" -- python3 -c 'print(1)'
