'use strict';
// The layering of node/lib (.dependency-cruiser.cjs, `npm run lint:layers`):
// the tree as it is passes, and a copy of node/lib with seeded violations (a
// require up or across a level in every wing that has one, node/lib requiring
// an entry script, a cycle) fails with each of them named, and nothing else.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.join(__dirname, '..', '..');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');
const DEPCRUISE = path.join(
  ROOT,
  'node_modules',
  'dependency-cruiser',
  'bin',
  'dependency-cruise.mjs',
);

/**
 * The check as `npm run lint:layers` runs it, in `cwd`: its exit status and
 * the violations it prints, one 'rule: from → to' line each (a cycle: every
 * module of it, in order).
 */
function cruise(cwd) {
  const out = spawnSync(process.execPath, [DEPCRUISE, '--config', CONFIG, 'node'], {
    cwd,
    encoding: 'utf8',
  });
  assert.ok(out.stdout, `depcruise printed nothing (exit ${out.status}): ${out.stderr}`);
  const violations = out.stdout
    .split(/^ {2}error /m)
    .slice(1)
    .map((v) => v.split('\n\n')[0].replace(/\s+/g, ' ').trim())
    .sort();
  return { status: out.status, violations, stdout: out.stdout };
}

test('node/lib as it is keeps its layering', () => {
  const { status, violations, stdout } = cruise(ROOT);
  assert.deepEqual(violations, []);
  assert.equal(status, 0, stdout);
  assert.match(stdout, /no dependency violations found/);
});

// A file in the copy -> what it requires; EXPECTED is what the check must print.
const SEEDS = {
  'node/lib/layers/seeded.js': ['../io/npy'],
  'node/lib/io/seeded.js': ['../runtime/choose'],
  'node/lib/runtime/seeded.js': ['../serve/batcher', '../../worker'],
  'node/lib/serve/seeded.js': ['../browser/launch'],
  'node/lib/browser/seeded.js': ['../demo/server'],
  'node/lib/io/cycle_a.js': ['./cycle_b'],
  'node/lib/io/cycle_b.js': ['./cycle_a'],
  // allowed: down from the top level
  'node/lib/demo/seeded.js': ['../runtime/vocabulary', '../serve/metrics', '../io/npy'],
};
const EXPECTED = [
  'layers-points-down: node/lib/layers/seeded.js → node/lib/io/npy.js',
  'io-points-down: node/lib/io/seeded.js → node/lib/runtime/choose.js',
  'runtime-points-down: node/lib/runtime/seeded.js → node/lib/serve/batcher.js',
  'lib-not-entry-points: node/lib/runtime/seeded.js → node/worker.js',
  'serve-points-down: node/lib/serve/seeded.js → node/lib/browser/launch.js',
  'browser-points-down: node/lib/browser/seeded.js → node/lib/demo/server.js',
  'no-circular: node/lib/io/cycle_a.js → node/lib/io/cycle_b.js → node/lib/io/cycle_a.js',
].sort();

test('the layering check names each seeded violation in a copy of node/lib', (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-bridge-layering-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  fs.cpSync(path.join(ROOT, 'node', 'lib'), path.join(tmp, 'node', 'lib'), { recursive: true });
  fs.writeFileSync(path.join(tmp, 'node', 'worker.js'), "'use strict';\n");
  for (const [file, requires] of Object.entries(SEEDS)) {
    const body = requires.map((r) => `require('${r}');\n`).join('');
    fs.writeFileSync(path.join(tmp, file), `'use strict';\n${body}`);
  }
  const { status, violations } = cruise(tmp);
  assert.deepEqual(violations, EXPECTED);
  assert.notEqual(status, 0);
});
