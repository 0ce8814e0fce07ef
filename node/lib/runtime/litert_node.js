'use strict';
// LiteRT.js (@litertjs/core) in a Node process: the 'litert' worker backend,
// path litert-node-wasm/tflite (docs/runtimes.md). LiteRT.js is written for
// pages and web workers: @litertjs/wasm-utils runs its Emscripten loader with
// importScripts (a worker) or a <script> in document.body (a page), then reads
// self.ModuleFactory, and so fails in Node with "document is not defined".
// The loader itself supports Node (its ENVIRONMENT_IS_NODE branch reads the
// .wasm with node:fs) and exports its factory the CommonJS way, so the two
// globals a worker has are given here: `self`, and an importScripts that runs
// the loader as the CommonJS module it also is. The WebAssembly that computes
// is LiteRT.js's own, unchanged.
//
// A .tflite runs as in the page (browser/litert_page.js): LiteRT.js takes
// static shapes only, so each batch size gets its own compiled model, from a
// copy of the file with the batch fixed (io/tflite_batch.js), on the WASM
// (XNNPack) accelerator, checked to be the one used.
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const { pathToFileURL } = require('url');
const { fixTfliteBatch } = require('../io/tflite_batch');
const { byName } = require('./runners');

const PACKAGE = '@litertjs/core';
const COMPILED_KEPT = 4; // compiled batch sizes kept per model (verify uses 2: its chunk and 1)
// LiteRT.js's native log lines (its environment, delegates) and its note that
// Node has no WebGPU (navigator): kept off the worker's stderr.
const CHATTER = /^(INFO: |WARNING: \[npu_registry|Failed to create default WebGPU device)/;

/** A loader file run as the CommonJS module it is (its UMD branch); returns its exports. */
function runAsCommonJs(file) {
  const module = { exports: {} };
  const params = ['exports', 'require', 'module', '__filename', '__dirname'];
  const body = vm.compileFunction(fs.readFileSync(file, 'utf8'), params, { filename: file });
  body(module.exports, require, module, file, path.dirname(file));
  return module.exports;
}

/** console.log / console.error without LiteRT.js's chatter. */
function quietChatter() {
  for (const level of ['log', 'error', 'warn']) {
    const original = console[level];
    console[level] = (...args) => {
      if (!CHATTER.test(String(args[0]))) original(...args);
    };
  }
}

/**
 * LiteRT.js loaded in this process (once), from its own wasm/ folder.
 * Returns {litert (the module), info (what the hello reports)}.
 */
async function loadLiteRtInNode() {
  const dir = path.dirname(require.resolve(`${PACKAGE}/package.json`));
  const loaded = [];
  globalThis.self = globalThis;
  globalThis.importScripts = (file) => {
    loaded.push(path.basename(file));
    globalThis.ModuleFactory = runAsCommonJs(file);
  };
  quietChatter();
  // (an ES module: imported, not required, from this CommonJS file)
  const litert = await import(pathToFileURL(path.join(dir, 'dist', 'index.js')).href);
  const liteRt = await litert.loadLiteRt(path.join(dir, 'wasm') + path.sep);
  const { version } = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  return {
    litert,
    info: {
      engine: 'litert',
      accelerator: 'wasm',
      litertjs: version,
      wasm_files: loaded, // which of its builds LiteRT.js chose (no relaxed SIMD in Node 20: compat)
      relaxed_simd: await litert.supportsFeature('relaxedSimd'),
      threads: liteRt.liteRtWasm.getThreadCount(),
    },
  };
}

/** The model compiled at `batch` on WASM, compiled now if it is not yet. */
async function compiledAt(litert, model, batch) {
  if (model.compiled.has(batch)) return model.compiled.get(batch);
  const { bytes } = fixTfliteBatch(model.bytes, batch);
  const compiled = await litert.loadAndCompile(bytes, { accelerator: 'wasm' });
  if (compiled.options.accelerator !== 'wasm') {
    compiled.delete();
    throw new Error(`LiteRT.js compiled the model for ${compiled.options.accelerator}, not wasm`);
  }
  if (model.compiled.size >= COMPILED_KEPT) {
    const [oldest, kept] = model.compiled.entries().next().value;
    kept.delete();
    model.compiled.delete(oldest);
  }
  model.compiled.set(batch, compiled);
  return compiled;
}

/**
 * A runner (runners.js's interface: run(arrays, names) -> plain outputs) for
 * the .tflite at `where`, compiled at a batch of one to read its names.
 */
async function tfliteRunner(litert, where) {
  const model = { bytes: new Uint8Array(fs.readFileSync(where)), compiled: new Map() };
  const first = await compiledAt(litert, model, 1);
  const inputs = first.getInputDetails().map((d) => d.name);
  // Sorted, as Python sorts a signature's outputs (parity/truth.py).
  const outputs = first
    .getOutputDetails()
    .map((d) => d.name)
    .sort();
  return {
    outputs,
    run: async (arrays, names) => {
      const ordered = byName(arrays, names, inputs, where);
      const compiled = await compiledAt(litert, model, ordered[0].shape[0]);
      const xs = ordered.map((x) => new litert.Tensor(x.data, x.shape));
      let ys;
      try {
        ys = await compiled.run(Object.fromEntries(inputs.map((name, i) => [name, xs[i]])));
      } finally {
        xs.forEach((x) => x.delete());
      }
      try {
        return outputs.map((name) => ({
          dtype: ys[name].type.dtype,
          shape: Array.from(ys[name].type.layout.dimensions),
          data: ys[name].toTypedArray(),
        }));
      } finally {
        Object.values(ys).forEach((y) => y.delete());
      }
    },
    dispose: () => {
      model.compiled.forEach((compiled) => compiled.delete());
      model.compiled.clear();
    },
  };
}

module.exports = { loadLiteRtInNode, tfliteRunner };
