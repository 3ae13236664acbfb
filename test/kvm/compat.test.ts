// A compatibility suite nobody here wrote: CPython's own regression tests for the OS (processes,
// files, descriptors, terminals, polling, time), from Debian's libpython3.11-testsuite in the
// python image (tag testsuite, test/fixtures/build-python.sh), run in a microVM and in a runc
// container. Test by test, what passes in the container must pass in the VM, except the
// differences listed below, each with its reason (and in the README).

import t from 'tap';

import { vmrun } from '../helpers/cli';
import { pythonLayout } from '../helpers/images';

/** The regression-test modules run, chosen for what they ask of the kernel and how long they take. */
const MODULES = ['test_os', 'test_posix', 'test_pty', 'test_fcntl', 'test_select', 'test_time'];

/**
 * Tests that pass in a container and not in a VM, and why. Keys are unittest ids; a listed test
 * that stops differing fails this suite too, so the list stays true.
 */
const KNOWN_DIFFERENCES: Record<string, string> = {};

/** Runs the modules under unittest and prints, after a marker line, {test id: outcome} as JSON. */
const RUNNER = `
import json, sys, unittest
class Result(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.outcomes = {}
    def addSuccess(self, test): self.outcomes.setdefault(test.id(), "pass")
    def addFailure(self, test, err): self.outcomes[test.id()] = "fail"
    def addError(self, test, err): self.outcomes[test.id()] = "error"
    def addSkip(self, test, reason): self.outcomes[test.id()] = "skip"
    def addExpectedFailure(self, test, err): self.outcomes[test.id()] = "pass"
    def addUnexpectedSuccess(self, test): self.outcomes[test.id()] = "fail"
    def addSubTest(self, test, subtest, err):
        if err is not None: self.outcomes[test.id()] = "fail" if issubclass(err[0], test.failureException) else "error"
result = Result()
unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:]).run(result)
print("\\n==vmrun-compat==")
print(json.dumps(result.outcomes, sort_keys=True))
`;

type Outcomes = Record<string, string>;

t.test('CPython\'s OS tests: what passes in a container passes in a VM', async (t) => {
  const image = `oci:${await pythonLayout()}:testsuite`;
  const run = async (runtime: string): Promise<Outcomes> => {
    const o = await vmrun(['--runtime', runtime, '--hostname', 'compat', image, 'python3', '-c', RUNNER, ...MODULES.map((m) => `test.${m}`)]);
    const text = o.stdout.toString();
    const marker = text.lastIndexOf('==vmrun-compat==\n');
    t.equal(o.code, 0, `${runtime}: the runner finished (stderr: ${o.stderr.slice(-2000)})`);
    t.ok(marker >= 0, `${runtime}: the runner printed its results`);
    return marker >= 0 ? (JSON.parse(text.slice(marker + '==vmrun-compat==\n'.length)) as Outcomes) : {};
  };
  const vm = await run('vm');
  const container = await run('container');

  const count = (o: Outcomes) => {
    const c: Record<string, number> = {};
    for (const outcome of Object.values(o)) c[outcome] = (c[outcome] ?? 0) + 1;
    return JSON.stringify(c);
  };
  t.comment(`vm: ${count(vm)}; container: ${count(container)}`);
  t.ok(Object.keys(vm).length > 500, `the suite ran (${Object.keys(vm).length} tests)`);
  t.same(Object.keys(vm).sort(), Object.keys(container).sort(), 'the same tests ran in both');

  const worseInVm = Object.keys(container).filter((id) => container[id] === 'pass' && vm[id] !== 'pass').sort();
  t.same(worseInVm, Object.keys(KNOWN_DIFFERENCES).sort(), `passing in the container, not in the VM: ${worseInVm.map((id) => `${id} (${vm[id]})`).join(', ') || 'none'}`);
  const worseInContainer = Object.keys(vm).filter((id) => vm[id] === 'pass' && container[id] !== 'pass').sort();
  t.comment(`passing in the VM, not in the container: ${worseInContainer.map((id) => `${id} (${container[id]})`).join(', ') || 'none'}`);
  const failing = Object.keys(vm).filter((id) => vm[id] === 'fail' || vm[id] === 'error');
  t.comment(`failing in both: ${failing.filter((id) => container[id] === vm[id]).join(', ') || 'none'}`);
});
