// The C++ unit tests of the VMM's parts that need no /dev/kvm (guest memory bounds, MP table,
// CPUID, loaders, boot info, bus, serial, i8042): `npx node-gyp rebuild` builds them as
// build/Release/vmm_unit_tests, which prints TAP; each of its checks becomes a subtest here.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

const root = path.join(__dirname, '..', '..');
const binary = path.join(root, 'build', 'Release', 'vmm_unit_tests');

// The real guest kernel, if it has been built: its loader checks run too.
function kernelDir(): string | undefined {
  try {
    const dir = execFileSync('bash', [path.join(root, 'images/kernel/build.sh'), '--path'], { cwd: root, encoding: 'utf8' }).trim();
    return fs.existsSync(path.join(dir, 'bzImage')) && fs.existsSync(path.join(dir, 'vmlinux')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

if (!fs.existsSync(binary)) {
  t.fail(`${binary} is missing: run \`npx node-gyp rebuild\``);
} else {
  const dir = kernelDir();
  if (!dir) t.comment('no built guest kernel: the real-kernel loader checks are left out');
  t.spawn(binary, [], { cwd: root, env: { ...process.env, VMM_TEST_KERNEL_DIR: dir ?? '' } }, 'vmm_unit_tests');
}
