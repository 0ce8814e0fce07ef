'use strict';
// The page's script, bundled by esbuild from the very files Node runs:
// page.js (the page's end of the worker contract), wire.js (how tensors
// cross), lib/runtime/runners.js
// (how a loaded model is named, fed and run) and lib/layers/ (tfjs-bridge's
// layers: the reset-after GRU, keras3_hard_sigmoid, causal Conv1D, the masked
// pooling, the fast loop). None of them requires tfjs: each takes the tf it is given, here the
// page's own (tf.min.js, loaded before the bundle). The build refuses any
// other input, so no second tfjs can slip into the page.
//
// A LiteRT.js page (engine 'litert') has its own bundle: litert_page.js,
// runners.js's naming and timing, tflite_runner.js (the .tflite per batch
// size, as in Node) with io/tflite_batch.js (and its reader, tflite_graph.js), and @litertjs/core
// itself (an ES module; its WebAssembly is served beside, server.js). An
// ONNX Runtime Web page (engine 'ort') bundles ort_page.js and runners.js.
//
// esbuild-wasm, not esbuild: the same bundler, but no platform binary in an
// optional dependency, which `npm ci --omit=optional` (make setup) would skip.
const fs = require('fs');
const path = require('path');
const { switchDefines } = require('../layers/switches');

const LIB = path.resolve(__dirname, '..');
// The project's packages, symlinks resolved (a git worktree may link them
// from another checkout): a bundle's package files are named from here.
const NODE_MODULES = fs.realpathSync(path.resolve(LIB, '..', '..', 'node_modules'));
// Each engine's entry, and the only files its bundle may hold (relative to node/lib).
const BUNDLES = {
  tfjs: {
    entry: path.join(__dirname, 'page.js'),
    allowed: [/^browser\/(page|wire)\.js$/, /^runtime\/runners\.js$/, /^layers\/[a-z0-9_]+\.js$/],
  },
  litert: {
    entry: path.join(__dirname, 'litert_page.js'),
    allowed: [
      /^browser\/(litert_page|wire)\.js$/,
      /^runtime\/(runners|tflite_runner)\.js$/,
      /^io\/tflite_(batch|graph)\.js$/,
      /^node_modules\/@litertjs\/(core|wasm-utils)\/dist\/index\.js$/,
    ],
  },
  // ONNX Runtime Web comes as its own script (server.js), like tf.min.js.
  ort: {
    entry: path.join(__dirname, 'ort_page.js'),
    allowed: [/^browser\/(ort_page|wire)\.js$/, /^runtime\/runners\.js$/],
  },
};

/**
 * The bundle's text: an IIFE that sets globalThis.tfjsBridge (litertBridge
 * for the litert engine, ortBridge for ort). Node's
 * environment switches the layers read (layers/switches.js) are fixed at build
 * time to this process's values, so a page runs the loop Node would (a page
 * has no `process`: one left in the bundle would throw there).
 */
async function buildPageBundle(engine = 'tfjs') {
  const esbuild = require('esbuild-wasm');
  const { entry, allowed } = BUNDLES[engine];
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: ['es2020'],
    metafile: true,
    logLevel: 'silent',
    define: switchDefines(),
  });
  const inputs = Object.keys(result.metafile.inputs).map((file) => {
    const where = fs.realpathSync(path.resolve(file));
    return where.startsWith(NODE_MODULES + path.sep)
      ? path.join('node_modules', path.relative(NODE_MODULES, where))
      : path.relative(LIB, path.resolve(file));
  });
  const foreign = inputs.filter((rel) => !allowed.some((re) => re.test(rel)));
  if (foreign.length) {
    throw new Error(`the page bundle would hold files other than ours: ${foreign.join(', ')}`);
  }
  return { text: result.outputFiles[0].text, inputs };
}

module.exports = { buildPageBundle };
