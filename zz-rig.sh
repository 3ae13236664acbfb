node dist/bench/containerd.js --runs 5 --json > /work/ci/bench-ctd.json 2>/work/ci/bench-ctd.err
echo bench rc=$?
node test/rig/tap-files.js --timeout 1400 dist/test/kvm/containerd.test.js
