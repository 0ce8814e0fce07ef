'use strict';
// node/lib/demo/server.js's bundle of the demo page: a page has no `process`,
// so no `process.env` switch of the layers may be left in it (each is fixed
// at build time, node/lib/layers/switches.js). Every switch in a layer file
// must be in that list, or a page would throw where Node reads it.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { buildBundle } = require('../lib/demo/server');
const { LAYER_SWITCHES } = require('../lib/layers/switches');

test('the demo bundle leaves no process.env read in the page', async () => {
  const text = await buildBundle();
  assert.doesNotMatch(text, /\bprocess\./);
});

test('every switch a layer reads is one the bundlers fix', () => {
  const dir = path.join(__dirname, '..', 'lib', 'layers');
  const read = new Set();
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.js'))) {
    const text = fs.readFileSync(path.join(dir, file), 'utf8');
    for (const [, name] of text.matchAll(/process\.env\.(TFJS_BRIDGE_\w+)/g)) read.add(name);
  }
  assert.ok(read.size > 0);
  assert.deepEqual(
    [...read].filter((name) => !LAYER_SWITCHES.includes(name)),
    [],
  );
});
