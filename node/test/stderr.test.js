'use strict';
// node/lib/runtime/stderr.js: fd 2 hidden and put back while another thread
// opens and closes files, as TensorFlow's threads do while it loads. The
// child's stderr is a file: after every call fd 2 must be that file again,
// what was written while hidden must not reach it, and a line written after
// must. The control reopens without checking where open() landed, on fd 2
// taken for 50 ms: deterministic, where the race above is not.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const CHILD = `
const fs = require('fs');
const { Worker } = require('worker_threads');
const { withStderrHidden } = require(${JSON.stringify(path.join(__dirname, '../lib/runtime/stderr'))});
// process.exit() below ends it
new Worker("const fs = require('fs'); for (;;) fs.closeSync(fs.openSync('/dev/zero', 'r'));", {
  eval: true,
});
const real = fs.fstatSync(2);
setTimeout(() => {
  let moved = 0;
  for (let i = 0; i < 3000; i++) {
    try {
      withStderrHidden(() => fs.writeSync(2, 'hidden\\n'));
    } catch {}
    let now = null;
    try { now = fs.fstatSync(2); } catch {}
    if (!now || now.ino !== real.ino || now.dev !== real.dev) moved += 1;
  }
  process.stderr.write('after\\n');
  fs.writeFileSync(process.env.RESULT, JSON.stringify({ moved }));
  process.exit(0);
}, 100);
`;

/**
 * Runs `script` in a child whose stderr is a file; returns what it wrote to
 * $RESULT (JSON) and that file's text.
 */
function runScript(script, env) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stderr-'));
  const errFile = path.join(dir, 'stderr.txt');
  const result = path.join(dir, 'result.json');
  const fd = fs.openSync(errFile, 'w');
  try {
    spawnSync(process.execPath, ['-e', script], {
      stdio: ['ignore', 'ignore', fd],
      env: { ...process.env, RESULT: result, ...env },
      timeout: 60000,
    });
  } finally {
    fs.closeSync(fd);
  }
  const said = fs.existsSync(result) ? JSON.parse(fs.readFileSync(result, 'utf8')) : null;
  return { said, stderr: fs.readFileSync(errFile, 'utf8') };
}

test('fd 2 is the real stderr after every call while another thread opens files', () => {
  const { said, stderr } = runScript(CHILD, { TFJS_BRIDGE_STDERR_REOPEN: '' });
  assert.deepEqual(said, { moved: 0 });
  assert.equal(stderr, 'after\n');
});

// Deterministic: fd 2 is taken (by this thread) and let go by another thread
// 50 ms later; the real stderr must be had back on fd 2 all the same.
const TAKEN = `
const fs = require('fs');
const { Worker } = require('worker_threads');
const { openOnStderr } = require(${JSON.stringify(path.join(__dirname, '../lib/runtime/stderr'))});
const real = fs.fstatSync(2);
const saved = fs.openSync('/proc/self/fd/2', 'a');
fs.closeSync(2);
const taken = fs.openSync('/dev/zero', 'r'); // lands on 2
new Worker("setTimeout(() => require('fs').closeSync(" + taken + "), 50)", { eval: true });
const had = openOnStderr('/proc/self/fd/' + saved, 'a');
const now = fs.fstatSync(2);
fs.writeFileSync(process.env.RESULT, JSON.stringify({ taken, had, back: now.ino === real.ino }));
process.stderr.write('after\\n');
process.exit(0);
`;

test('fd 2 taken by another thread: the reopen waits for it and lands on 2', () => {
  const { said, stderr } = runScript(TAKEN, { TFJS_BRIDGE_STDERR_REOPEN: '' });
  const { taken, had, back } = said;
  assert.equal(taken, 2);
  assert.ok(had && back);
  assert.equal(stderr, 'after\n');
});

test('control: reopened where open() lands, fd 2 is lost (the empty stderr seen in CI)', () => {
  const { said, stderr } = runScript(TAKEN, { TFJS_BRIDGE_STDERR_REOPEN: 'unchecked' });
  const { taken, back } = said;
  assert.equal(taken, 2);
  assert.ok(!back);
  assert.equal(stderr, '');
});
