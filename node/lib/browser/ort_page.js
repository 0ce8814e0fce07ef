'use strict';
// The page's half of an ONNX Runtime Web browser worker ('chromium-ort-wasm';
// bundle.js builds it, driver.js calls it through page.evaluate). It answers
// what page.js answers for tfjs (start = hello, load, predict, bench, memory,
// dispose), with no tfjs in the page: onnxruntime-web's WASM build
// (ort.wasm.min.js, served with its .wasm by server.js: globalThis.ort) runs
// the folder's .onnx through runners.js's onnxRunner, the very code that
// runs it on onnxruntime-node. Tensors cross as base64 of their raw
// little-endian bytes, as page.js's do.
const { onnxRunner, timeCalls } = require('../runtime/runners');

const { toBase64, fromBase64 } = require('./wire');
const models = new Map();

const ortOf = () => {
  if (!globalThis.ort) throw new Error('ort.wasm.min.js did not load in the page');
  return globalThis.ort;
};

/**
 * Points onnxruntime-web at our server's WebAssembly, on one thread (threads
 * need cross-origin isolation, which the server does not send).
 */
async function start(backend, { wasmPaths }) {
  if (backend !== 'wasm') throw new Error(`this page runs ONNX Runtime Web's wasm, not ${backend}`);
  const ort = ortOf();
  ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.wasm.numThreads = 1;
  return {
    backend,
    engine: 'ort',
    execution_provider: 'wasm',
    onnxruntime_web: ort.env.versions.web,
    threads: ort.env.wasm.numThreads,
    user_agent: navigator.userAgent,
  };
}

/** Loads the .onnx at `url` under `handle`, on the wasm execution provider only (no fallback list). */
async function load(handle, url) {
  const started = performance.now();
  const runner = await onnxRunner(ortOf(), url, url, { executionProviders: ['wasm'] });
  models.set(handle, runner);
  return { outputs: runner.outputs, load_ms: performance.now() - started };
}

function get(handle) {
  const runner = models.get(handle);
  if (!runner) throw new Error(`no model loaded under handle ${handle}`);
  return runner;
}

async function predict(handle, inputs, names) {
  const runner = get(handle);
  const started = performance.now();
  const out = await runner.run(inputs.map(fromBase64), names);
  return {
    ms: performance.now() - started,
    outputs: runner.outputs,
    tensors: out.map(({ dtype, shape, data }) => ({ dtype, shape, b64: toBase64(data) })),
  };
}

function memory() {
  const heap = globalThis.performance && performance.memory; // (Chromium only)
  return { num_tensors: null, num_bytes: null, heap_used: heap ? heap.usedJSHeapSize : null };
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

globalThis.ortBridge = { start, load, predict, bench, memory, dispose };
