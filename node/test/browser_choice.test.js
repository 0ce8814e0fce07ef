'use strict';
// The browser page's path choice (lib/runtime/choose.js fastestBrowserPath):
// a pure function of a parity.json record, so records are written here by
// hand. Each case has its control: the same record with the one fact that
// decides it changed must change the answer.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { fastestBrowserPath, chooseBrowserPath } = require('../lib/runtime/choose');
const { PARITY } = require('../lib/runtime/vocabulary');

const pass = { status: 'pass' };
const record = (results, speed = {}) => ({ version: PARITY.version, results, speed });
// Figures of the shape bench writes ("<batch>": samples/s), in the order a page sees them.
const FIGURES = {
  'chromium-litert-wasm/tflite': { 1: 2500, 32: 15000, 256: 10000 },
  'chromium-wasm/layers': { 1: 170, 32: 1300, 256: 20000 },
  'chromium-webgl/layers': { 1: 40, 32: 550, 256: 1300 },
};

test('the fastest verified browser path at batch 1, with the figure that chose it', () => {
  const all = record(
    {
      'chromium-litert-wasm/tflite': pass,
      'chromium-wasm/layers': pass,
      'chromium-webgl/layers': pass,
    },
    FIGURES,
  );
  const chosen = fastestBrowserPath(all);
  assert.equal(chosen.runtime, 'chromium-litert-wasm/tflite');
  assert.equal(chosen.format, 'tflite');
  assert.equal(chosen.backend, 'chromium-litert-wasm');
  assert.equal(chosen.samples_per_s, 2500);
  assert.equal(chosen.batch, 1);
  assert.match(chosen.why, /fastest verified path \(2500 samples\/s at B=1\)/);
  // At a batch where tfjs's WASM is faster, it wins: figures decide, not a ranking.
  assert.equal(fastestBrowserPath(all, { batch: 256 }).runtime, 'chromium-wasm/layers');
});

test('a faster path that did not pass verify is never chosen', () => {
  const mismatch = record(
    {
      'chromium-litert-wasm/tflite': { status: 'mismatch' },
      'chromium-wasm/layers': pass,
    },
    FIGURES,
  );
  assert.equal(fastestBrowserPath(mismatch).runtime, 'chromium-wasm/layers');
  // Control: passed, the same record chooses LiteRT.js.
  mismatch.results['chromium-litert-wasm/tflite'] = pass;
  assert.equal(fastestBrowserPath(mismatch).runtime, 'chromium-litert-wasm/tflite');
});

test('Node paths are not browser paths, however fast', () => {
  const nodeOnly = record(
    { 'tfjs-node/saved_model': pass, 'python-tflite/tflite': pass },
    { 'tfjs-node/saved_model': { 1: 99999 } },
  );
  const chosen = fastestBrowserPath(nodeOnly, { model: 'gru' });
  assert.equal(chosen.runtime, null);
  assert.match(chosen.why, /^unverified: run `tfjs-bridge verify gru --runtime chromium-wasm/);
  assert.match(fastestBrowserPath(null).why, /^unverified/);
});

test('formats and backends limit the choice (the demo runs layers and tflite)', () => {
  const graphFastest = record(
    { 'chromium-wasm/graph': pass, 'chromium-wasm/layers': pass },
    { 'chromium-wasm/graph': { 1: 900 }, 'chromium-wasm/layers': { 1: 100 } },
  );
  assert.equal(fastestBrowserPath(graphFastest).runtime, 'chromium-wasm/graph');
  const demo = fastestBrowserPath(graphFastest, { formats: ['layers', 'tflite'] });
  assert.equal(demo.runtime, 'chromium-wasm/layers');
  const noWasm = fastestBrowserPath(graphFastest, { backends: ['chromium-webgl'] });
  assert.equal(noWasm.runtime, null);
});

test('verified but not timed: a verified path, and the reason says to bench', () => {
  const chosen = fastestBrowserPath(record({ 'chromium-cpu/layers': pass }), { model: 'lstm' });
  assert.equal(chosen.runtime, 'chromium-cpu/layers');
  assert.equal(chosen.samples_per_s, null);
  assert.match(chosen.why, /^verified, not timed: run `tfjs-bridge bench lstm /);
});

test('a record from another version chooses nothing', () => {
  const old = { ...record({ 'chromium-wasm/layers': pass }), version: PARITY.version + 1 };
  const chosen = fastestBrowserPath(old);
  assert.equal(chosen.runtime, null);
  assert.match(chosen.why, /another tfjs-bridge version/);
});

test('chooseBrowserPath reads the folder and names it in the reason', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'browser-choice-'));
  try {
    const folder = path.join(dir, 'gru');
    fs.mkdirSync(folder);
    assert.match(chooseBrowserPath(folder).why, /verify gru --runtime/);
    fs.writeFileSync(
      path.join(folder, PARITY.file),
      JSON.stringify(record({ 'chromium-litert-wasm/tflite': pass }, FIGURES)),
    );
    assert.equal(chooseBrowserPath(folder).runtime, 'chromium-litert-wasm/tflite');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
