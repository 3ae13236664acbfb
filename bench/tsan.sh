#!/usr/bin/env bash
# Builds the VMM's C++ unit tests (binding.gyp's vmm_unit_tests) under ThreadSanitizer and runs
# them: the vCPU threads, the device thread and Node's thread share devices, queues and the
# serial port, and a data race there is a guest-triggerable bug. Any report fails the script.
#   bash bench/tsan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/tsan
mkdir -p "$out"
# The test target's sources, as binding.gyp lists them (a Python literal after its comment lines,
# with "<@(name)" standing for a shared list).
mapfile -t sources < <(python3 -c '
import ast
text = "".join(l for l in open("binding.gyp") if not l.lstrip().startswith("#"))
gyp = ast.literal_eval(text)
target = next(t for t in gyp["targets"] if t["target_name"] == "vmm_unit_tests")
for s in target["sources"]:
    print("\n".join(gyp["variables"][s[3:-1]]) if s.startswith("<@(") else s)')
g++ -std=c++17 -O1 -g -fsanitize=thread -Inative/kvm -o "$out/vmm_unit_tests" "${sources[@]}" -lpthread
# handle_segv=0: the guard-page test expects its child to die by SIGSEGV, as without TSan.
if ! TSAN_OPTIONS="handle_segv=0 halt_on_error=1 exitcode=66" "$out/vmm_unit_tests" >"$out/tap.txt"; then
  grep -A6 '^not ok' "$out/tap.txt" >&2 || true
  echo "tsan: failed (a data race is reported above; a failed check is listed)" >&2
  exit 1
fi
echo "tsan: $(grep -c '^ok' "$out/tap.txt") checks passed, no data race reported"
