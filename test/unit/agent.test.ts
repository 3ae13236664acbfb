// The guest agent's own tests (guest/agent/tests/): its unpacker, whiteouts, user resolution,
// frame parser and process relay, run on this host as root against temporary directories.
// They print TAP; each check becomes a subtest here.
import path from 'node:path';
import t from 'tap';

const root = path.join(__dirname, '..', '..');
t.spawn('bash', [path.join(root, 'images', 'agent', 'build.sh'), '--test'], { cwd: root }, 'agent tests');
