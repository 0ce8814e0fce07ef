'use strict';
// The browser worker's parts (lib/browser/): the page bundle holds only our
// files, the server serves only what it names and only on 127.0.0.1, and a
// backend that does not start in a real page is an error, never tfjs's
// quiet fallback. Without Chromium these are skips with the reason, and
// failures under CI=true (`make test` runs `make browser` first).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawnSync } = require('child_process');
const { buildPageBundle } = require('../lib/browser/bundle');
const { startServer } = require('../lib/browser/server');
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

test('the page bundle is built from our files only, around the page tf', async () => {
  const { text, inputs } = await buildPageBundle();
  assert.ok(inputs.includes('layers/index.js') && inputs.includes('layers/gru_reset_after.js'));
  assert.ok(inputs.includes('runtime/runners.js') && inputs.includes('browser/page.js'));
  assert.ok(
    inputs.every((f) => /^(layers|runtime|browser)\//.test(f)),
    inputs,
  );
  assert.doesNotMatch(text, /@tensorflow|\brequire\(/); // (no module left to load at run time)
  assert.doesNotMatch(text, /\bprocess\./); // a page has no process: each switch fixed at build
  assert.match(text, /globalThis\.tfjsBridge\s*=/);
});

test('the server answers on 127.0.0.1, with only the files it names', async () => {
  const server = await startServer('wasm', '/* bundle */');
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const get = (p) => fetch(`${server.url}${p}`);
    const page = await (await get('/')).text();
    assert.match(page, /tf\.min\.js[\s\S]*tf-backend-wasm\.min\.js[\s\S]*bridge\.js/);
    const wasm = await get('/tfjs/tfjs-backend-wasm-simd.wasm');
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    const folder = path.join(__dirname, '..', 'lib', 'browser');
    const base = server.mount(1, folder, ['page.js']);
    assert.equal((await fetch(`${base}page.js`)).status, 200);
    for (const p of ['/models/1/server.js', '/models/1/../bundle.js', '/models/2/page.js', '/x'])
      assert.equal((await get(p)).status, 404, p);
    server.unmount(1);
    assert.equal((await fetch(`${base}page.js`)).status, 404);
  } finally {
    await server.close();
  }
});

test(
  'a backend the browser cannot start is an error, not a fallback',
  { skip: chromiumMissing() || false },
  async () => {
    // Chromium without --enable-unsafe-webgpu has no WebGPU on Linux: tfjs
    // would quietly carry on with webgl or cpu.
    const { text } = await buildPageBundle();
    const server = await startServer('webgpu', text);
    const launched = await launchBrowser('chromium', 'cpu');
    try {
      const page = await launched.browser.newPage();
      await page.goto(`${server.url}/`);
      await assert.rejects(
        page.evaluate(() => globalThis.tfjsBridge.start('webgpu', {})),
        /the webgpu backend did not start in this browser \(tfjs fell back to (webgl|cpu)\)/,
      );
    } finally {
      await launched.close();
      await server.close();
    }
  },
);

test('worker.js names the browser backends, and refuses others in one line', () => {
  const worker = path.join(__dirname, '..', 'worker.js');
  const help = spawnSync(process.execPath, [worker, '--help'], { encoding: 'utf8' });
  assert.match(help.stdout, /browser backends .*chromium-webgl.*firefox-webgl/);
  const bad = spawnSync(process.execPath, [worker, '--backend', 'safari-webgl'], {
    encoding: 'utf8',
    input: '',
  });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^error: unknown backend 'safari-webgl' \(known: .*chromium-cpu.*\)\n$/);
});
