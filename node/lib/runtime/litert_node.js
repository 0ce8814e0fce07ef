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
// A .tflite runs as in the page (tflite_runner.js, one compiled model per
// batch size), on the WASM (XNNPack) accelerator.
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const { pathToFileURL } = require('url');
const { tfliteRunner } = require('./tflite_runner');

const PACKAGE = '@litertjs/core';
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

/** A runner for the .tflite at `where` (tflite_runner.js), on the WASM accelerator. */
function tfliteFileRunner(litert, where) {
  return tfliteRunner(litert, new Uint8Array(fs.readFileSync(where)), 'wasm', where);
}

module.exports = { loadLiteRtInNode, tfliteFileRunner };
