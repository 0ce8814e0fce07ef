'use strict';
// The page's half of a LiteRT.js browser worker ('chromium-litert-wasm';
// bundle.js builds it with @litertjs/core, driver.js calls it through
// page.evaluate). It answers what page.js answers for tfjs (start = hello,
// load, predict, bench, memory, dispose), with no tfjs in the page: LiteRT.js
// compiles the folder's .tflite for one accelerator and runs it
// (runtime/tflite_runner.js: one compiled model per batch size, as LiteRT.js
// takes static shapes only; the same code runs it in Node). Tensors cross as
// base64 of their raw little-endian bytes, as page.js's do.
const litert = require('@litertjs/core');
const { tfliteRunner } = require('../runtime/tflite_runner');
const { timeCalls } = require('../runtime/runners');

const { toBase64, fromBase64 } = require('./wire');
const models = new Map(); // handle -> tflite_runner.js's runner
const state = { accelerator: null };

/**
 * Loads LiteRT.js's WebAssembly from `wasmPaths` (served by the driver) and
 * checks that `accelerator` exists here: LiteRT.js would otherwise compile
 * for WASM when a WebGPU device is missing or a model is not fully delegated.
 */
async function start(accelerator, { wasmPaths }) {
  const liteRt = await litert.loadLiteRt(wasmPaths); // single-threaded, no JSPI
  const device = litert.getDefaultEnvironment().webGpuDevice;
  if (accelerator === 'webgpu' && !device) {
    throw new Error('LiteRT.js found no WebGPU device in this browser');
  }
  state.accelerator = accelerator;
  return {
    backend: accelerator,
    engine: 'litert',
    relaxed_simd: await litert.supportsFeature('relaxedSimd'),
    jspi: await litert.supportsFeature('jspi'),
    threads: liteRt.liteRtWasm.getThreadCount(),
    webgpu_device: Boolean(device),
    user_agent: navigator.userAgent,
  };
}

/** Loads the .tflite at `url` under `handle`, compiled at a batch of one. */
async function load(handle, url) {
  const started = performance.now();
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const runner = await tfliteRunner(litert, bytes, state.accelerator, 'litert');
  models.set(handle, runner);
  return { outputs: runner.outputs, load_ms: performance.now() - started };
}

function get(handle) {
  const model = models.get(handle);
  if (!model) throw new Error(`no model loaded under handle ${handle}`);
  return model;
}

/**
 * Runs the model under `handle` on plain inputs ({dtype, shape, data}): its
 * outputs so, in `outputs`' order, and the accelerator it was compiled for
 * (the demo page's LiteRT.js runtime calls this directly, no base64).
 */
async function run(handle, inputs, names = null) {
  const runner = get(handle);
  const tensors = await runner.run(inputs, names);
  const compiled = await runner.compiledAt(inputs[0].shape[0]);
  return { outputs: runner.outputs, tensors, accelerator: compiled.options.accelerator };
}

async function predict(handle, inputs, names) {
  const runner = get(handle);
  const xs = inputs.map(fromBase64);
  const started = performance.now();
  const out = await runner.run(xs, names);
  return {
    ms: performance.now() - started,
    outputs: runner.outputs,
    tensors: out.map(({ dtype, shape, data }) => ({ dtype, shape, b64: toBase64(data) })),
  };
}

function memory() {
  // (performance.memory: Chromium only; LiteRT.js's own memory is its WebAssembly heap)
  const heap = globalThis.performance && performance.memory;
  const wasm = litert.getGlobalLiteRt().liteRtWasm.HEAPU8;
  return {
    num_tensors: null,
    num_bytes: null,
    heap_used: heap ? heap.usedJSHeapSize : null,
    wasm_heap: wasm ? wasm.byteLength : null,
  };
}

async function bench(handle, inputs, names, options) {
  const runner = get(handle);
  const xs = inputs.map(fromBase64);
  return { ...(await timeCalls(() => runner.run(xs, names), options)), ...memory() };
}

function dispose(handle) {
  get(handle).dispose();
  models.delete(handle);
}

globalThis.litertBridge = { start, load, predict, bench, memory, dispose };
module.exports = { start, load, run, dispose };
