'use strict';
// The LiteRT.js page's parts (docs/runtimes.md): its bundle holds our page,
// runners.js, tflite_batch.js and @litertjs/core only (no tfjs); the server
// serves LiteRT.js's WebAssembly itself, as application/wasm, and nothing
// else under /litert/; the batch fix refuses what it cannot fix. The page
// running real models is tests/test_litert.py.
const test = require('node:test');
const assert = require('node:assert/strict');
const { buildPageBundle } = require('../lib/browser/bundle');
const { startServer, LITERT_FILES, ORT_FILES } = require('../lib/browser/server');
const { fixTfliteBatch } = require('../lib/io/tflite_batch');
const { staticPieces } = require('../lib/runtime/tflite_runner');
const { launchBrowser, browserExecutable } = require('../lib/browser/launch');

function chromiumMissing() {
  try {
    browserExecutable('chromium');
    return null;
  } catch (err) {
    if (process.env.CI)
      throw new Error(`${err.message}; CI must run every runtime`, { cause: err });
    return err.message;
  }
}

test('the LiteRT.js bundle is our page and @litertjs/core, with no tfjs', async () => {
  const { text, inputs } = await buildPageBundle('litert');
  assert.deepEqual(inputs.filter((f) => !f.includes('node_modules')).sort(), [
    'browser/litert_page.js',
    'browser/wire.js',
    'io/tflite_batch.js',
    'io/tflite_graph.js',
    'runtime/runners.js',
    'runtime/tflite_runner.js',
  ]);
  assert.ok(inputs.some((f) => f.endsWith('node_modules/@litertjs/core/dist/index.js')));
  assert.doesNotMatch(text, /@tensorflow|\brequire\(/);
  assert.match(text, /globalThis\.litertBridge\s*=/);
});

test('the server serves LiteRT.js from node_modules, and a page with no tfjs', async () => {
  const server = await startServer('wasm', '/* bundle */', 'litert');
  try {
    const page = await (await fetch(`${server.url}/`)).text();
    assert.doesNotMatch(page, /tf\.min\.js/);
    assert.match(page, /bridge\.js[\s\S]*<body>/);
    const wasm = await fetch(`${server.url}/litert/litert_wasm_internal.wasm`);
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    assert.equal(
      Number(wasm.headers.get('content-length')),
      require('fs').statSync(LITERT_FILES['litert_wasm_internal.wasm']).size,
    );
    for (const p of ['/litert/../package.json', '/litert/index.js', '/litert/x.wasm'])
      assert.equal((await fetch(`${server.url}${p}`)).status, 404, p);
    assert.deepEqual(server.served(), ['litert_wasm_internal.wasm']);
  } finally {
    await server.close();
  }
});

test(
  'an ONNX Runtime Web page loads its WASM build from us',
  {
    skip: Object.keys(ORT_FILES).length
      ? false
      : 'onnxruntime-web is not installed: run `make onnx`',
  },
  async () => {
    const { text, inputs } = await buildPageBundle('ort');
    assert.deepEqual(inputs, ['runtime/runners.js', 'browser/wire.js', 'browser/ort_page.js']);
    assert.match(text, /globalThis\.ortBridge\s*=/);
    const server = await startServer('wasm', text, 'ort');
    try {
      const page = await (await fetch(`${server.url}/`)).text();
      assert.match(page, /\/ort\/ort\.wasm\.min\.js[\s\S]*bridge\.js/);
      const wasm = await fetch(`${server.url}/ort/ort-wasm-simd-threaded.wasm`);
      assert.equal(wasm.headers.get('content-type'), 'application/wasm');
      assert.equal((await fetch(`${server.url}/ort/ort.min.js`)).status, 404); // (not named)
    } finally {
      await server.close();
    }
  },
);

test(
  'ONNX Runtime Web asked for WebGPU where there is none is an error, not a WASM fallback',
  {
    skip:
      (!Object.keys(ORT_FILES).length && 'onnxruntime-web is not installed: run `make onnx`') ||
      chromiumMissing() ||
      false,
  },
  async () => {
    // The WebGPU page loads onnxruntime-web/webgpu's build; in a Chromium
    // without --enable-unsafe-webgpu (no adapter on Linux) it refuses to start.
    const { text } = await buildPageBundle('ort');
    const server = await startServer('webgpu', text, 'ort');
    const launched = await launchBrowser('chromium', 'cpu');
    try {
      const page = await launched.browser.newPage();
      await page.goto(`${server.url}/`);
      const wasmPaths = `${server.url}/ort/`;
      await assert.rejects(
        page.evaluate((o) => globalThis.ortBridge.start('webgpu', o), { wasmPaths }),
        /this browser has no WebGPU adapter/,
      );
      assert.deepEqual(server.served(), ['ort.webgpu.min.js']); // (the WebGPU build did load)
    } finally {
      await launched.close();
      await server.close();
    }
  },
);

test(
  'LiteRT.js asked for WebGPU where there is none is an error, not a WASM fallback',
  { skip: chromiumMissing() || false },
  async () => {
    // Chromium without --enable-unsafe-webgpu has no adapter on Linux:
    // LiteRT.js would compile every model for WASM instead.
    const { text } = await buildPageBundle('litert');
    const server = await startServer('webgpu', text, 'litert');
    const launched = await launchBrowser('chromium', 'cpu');
    try {
      const page = await launched.browser.newPage();
      await page.goto(`${server.url}/`);
      const wasmPaths = `${server.url}/litert/`;
      await assert.rejects(
        page.evaluate((o) => globalThis.litertBridge.start('webgpu', o), { wasmPaths }),
        /LiteRT\.js found no WebGPU device in this browser/,
      );
      assert.ok(server.served().includes('litert_wasm_internal.wasm')); // (it did load)
    } finally {
      await launched.close();
      await server.close();
    }
  },
);

test('the batch fix refuses what is not a .tflite, and a batch below 1', () => {
  assert.throws(() => fixTfliteBatch(new Uint8Array(64), 2), /not a \.tflite file/);
  assert.throws(() => fixTfliteBatch(new Uint8Array(64), 0), /batch must be >= 1/);
});

test('on static batches, a batch runs as pieces of the largest size, the last one padded', () => {
  // (WebGPU's files: `convert --static-batch 1,32`)
  assert.deepEqual(staticPieces(1, [1, 32]), [{ start: 0, count: 1, size: 1 }]);
  assert.deepEqual(staticPieces(32, [1, 32]), [{ start: 0, count: 32, size: 32 }]);
  assert.deepEqual(staticPieces(70, [1, 32]), [
    { start: 0, count: 32, size: 32 },
    { start: 32, count: 32, size: 32 },
    { start: 64, count: 6, size: 32 },
  ]);
  assert.deepEqual(staticPieces(5, [1, 8, 32]), [{ start: 0, count: 5, size: 8 }]);
});
