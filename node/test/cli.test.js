'use strict';
// Every Node script answers --help with its usage on stdout, exit 0, and a
// usage error with exactly one `error:` line on stderr, exit 2.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawnSync } = require('child_process');

const NODE_DIR = path.join(__dirname, '..');
const SCRIPTS = [
  'predict.js',
  'train.js',
  'worker.js',
  'serve.js',
  'demo.js',
  'scripts/doctor.js',
  'scripts/echo-npy.js',
  'scripts/bench-masks.js',
  'scripts/bench-stream.js',
  'scripts/bench-stream-serve.js',
  'scripts/bench-stream-memory.js',
  'scripts/bench-http-processes.js',
  'scripts/stream-proxy.js',
  'scripts/tokenize.js',
  'scripts/load.js',
  'scripts/create-tfjs-models.js',
  'scripts/demo-check.js',
  'scripts/digit-image.js',
  'scripts/choose-path.js',
];

const run = (script, args) =>
  spawnSync(process.execPath, [path.join(NODE_DIR, script), ...args], { encoding: 'utf8' });

for (const script of SCRIPTS) {
  test(`${script} --help prints its usage`, () => {
    const out = run(script, ['--help']);
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stdout, /^usage: /);
    assert.equal(out.stderr, '');
  });
}

for (const script of [
  'predict.js',
  'train.js',
  'worker.js',
  'serve.js',
  'scripts/load.js',
  'scripts/bench-stream.js',
  'scripts/bench-stream-serve.js',
  'scripts/bench-stream-memory.js',
  'scripts/bench-http-processes.js',
  'scripts/stream-proxy.js',
  'scripts/digit-image.js',
  'scripts/choose-path.js',
]) {
  test(`${script} with an unknown option: one error line, exit 2`, () => {
    const out = run(script, ['--no-such-option']);
    assert.equal(out.status, 2, out.stderr);
    assert.equal(out.stderr.split('\n').filter(Boolean).length, 1, out.stderr);
    assert.match(out.stderr, /^error: .*no-such-option.*usage: /);
  });
}

test('choose-path.js: a folder that is not there is one error line, exit 1', () => {
  const out = run('scripts/choose-path.js', [path.join(NODE_DIR, 'no-such-model')]);
  assert.equal(out.status, 1, out.stderr);
  assert.match(out.stderr, /^error: .*no-such-model: no such model folder\n$/);
  assert.equal(out.stdout, '');
});

for (const [script, args, message] of [
  [
    'scripts/bench-stream.js',
    ['--model', path.join(NODE_DIR, 'no-such-model')],
    /no manifest\.json there/,
  ],
  [
    'scripts/bench-stream-serve.js',
    ['--model', NODE_DIR, '--steps', '0'],
    /no manifest\.json there/,
  ],
  ['scripts/bench-stream-memory.js', ['--model', NODE_DIR], /no manifest\.json there/],
  ['scripts/bench-stream-memory.js', ['--model', '.', '--live', '0,10,5'], /--live|manifest/],
]) {
  test(`${script} ${args.join(' ')}: one error line, exit 2`, () => {
    const out = run(script, args);
    assert.equal(out.status, 2, out.stderr);
    assert.equal(out.stderr.split('\n').filter(Boolean).length, 1, out.stderr);
    assert.match(out.stderr, message);
    assert.equal(out.stdout, '');
  });
}
