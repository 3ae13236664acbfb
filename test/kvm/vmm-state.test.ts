// The C++ tests of the VMM's parts that need a working /dev/kvm (the rig's, or a host's): a
// vCPU and its VM saved, encoded as a snapshot carries them, and restored into a fresh VM that
// goes on where the first stopped. `npx node-gyp rebuild` builds build/Release/vmm_kvm_tests,
// which prints TAP; each of its checks becomes a subtest here.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

const root = path.join(__dirname, '..', '..', '..');
const binary = path.join(root, 'build', 'Release', 'vmm_kvm_tests');

if (!fs.existsSync(binary)) {
  t.fail(`${binary} is missing: run \`npx node-gyp rebuild\``);
} else {
  t.spawn(binary, [], { cwd: root }, 'vmm_kvm_tests');
}
