'use strict';
// LiteRT.js in Node (lib/runtime/litert_node.js; docs/runtimes.md): as
// shipped it does not load in Node, and it does with the two globals a web
// worker has. Each case runs in a child process of its own, since both leave
// globals behind. The path running real models is tests/test_litert_node.py.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawnSync } = require('child_process');

const LIB = path.resolve(__dirname, '..', 'lib');

/** Runs `code` (CommonJS, `lib` the path of node/lib) in a fresh Node; {status, stdout, stderr}. */
function inChild(code) {
  const script = `const lib = ${JSON.stringify(LIB)};\n${code}`;
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120000 });
}

test('as shipped, LiteRT.js does not load in Node: it needs a document', () => {
  const child = inChild(`
    const dir = require('path').dirname(require.resolve('@litertjs/core/package.json', { paths: [lib] }));
    import(require('url').pathToFileURL(dir + '/dist/index.js').href)
      .then((litert) => litert.loadLiteRt(dir + '/wasm/'))
      .then(() => console.log('loaded'), (err) => console.log('failed: ' + err.message));
  `);
  assert.equal(child.stdout.trim(), 'failed: document is not defined', child.stderr);
});

test('with self and importScripts given, LiteRT.js loads its own WebAssembly in Node', () => {
  const child = inChild(`
    require(lib + '/runtime/litert_node').loadLiteRtInNode()
      .then(({ info }) => console.log(JSON.stringify(info)));
  `);
  assert.equal(child.status, 0, child.stderr);
  const info = JSON.parse(child.stdout);
  assert.equal(info.engine, 'litert');
  assert.equal(info.threads, 1);
  // Node 20 has no relaxed SIMD: LiteRT.js picks its compat build there.
  const build = info.relaxed_simd ? 'litert_wasm_internal.js' : 'litert_wasm_compat_internal.js';
  assert.deepEqual(info.wasm_files, [build]);
  assert.equal(child.stderr, ''); // (its native INFO lines and WebGPU note kept off stderr)
});
