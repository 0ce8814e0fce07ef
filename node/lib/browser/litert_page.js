'use strict';
// The page's half of a LiteRT.js browser worker ('chromium-litert-wasm';
// bundle.js builds it with @litertjs/core, driver.js calls it through
// page.evaluate). It answers what page.js answers for tfjs (start = hello,
// load, predict, bench, memory, dispose), with no tfjs in the page: LiteRT.js
// compiles the folder's .tflite for one accelerator and runs it. Tensors
// cross as base64 of their raw little-endian bytes, as page.js's do.
//
// LiteRT.js takes static shapes only, so each batch size the page is asked
// for gets its own compiled model (io/tflite_batch.js fixes the batch in a
// copy of the file), a few kept per model.
const litert = require('@litertjs/core');
const { fixTfliteBatch } = require('../io/tflite_batch');
const { byName, timeCalls } = require('../runtime/runners');

const { toBase64, fromBase64 } = require('./wire');
const COMPILED_KEPT = 4; // compiled batch sizes kept per model (verify uses 2: its chunk and 1)
const models = new Map(); // handle -> {bytes, inputs, outputs, compiled: Map(batch -> CompiledModel)}
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

/** The model compiled at `batch`, compiled now if it is not yet; checks the accelerator. */
async function compiledAt(model, batch) {
  if (model.compiled.has(batch)) return model.compiled.get(batch);
  const { bytes } = fixTfliteBatch(model.bytes, batch);
  const compiled = await litert.loadAndCompile(bytes, { accelerator: state.accelerator });
  const used = compiled.options.accelerator;
  if (used !== state.accelerator) {
    compiled.delete();
    throw new Error(`LiteRT.js compiled the model for ${used}, not ${state.accelerator}`);
  }
  if (state.accelerator !== 'wasm' && !compiled.isFullyAccelerated) {
    compiled.delete();
    throw new Error(`LiteRT.js put only part of the model on ${state.accelerator}`);
  }
  if (model.compiled.size >= COMPILED_KEPT) {
    const [oldest, kept] = model.compiled.entries().next().value;
    kept.delete();
    model.compiled.delete(oldest);
  }
  model.compiled.set(batch, compiled);
  return compiled;
}

/** Loads the .tflite at `url` under `handle`, compiled at a batch of one. */
async function load(handle, url) {
  const started = performance.now();
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const model = { bytes: new Uint8Array(await response.arrayBuffer()), compiled: new Map() };
  const compiled = await compiledAt(model, 1);
  model.inputs = compiled.getInputDetails().map((d) => d.name);
  // Sorted, as Python sorts a signature's outputs (parity/truth.py).
  model.outputs = compiled.getOutputDetails().map((d) => d.name);
  model.outputs.sort();
  models.set(handle, model);
  return { outputs: model.outputs, load_ms: performance.now() - started };
}

function get(handle) {
  const model = models.get(handle);
  if (!model) throw new Error(`no model loaded under handle ${handle}`);
  return model;
}

/** call() runs the model on `inputs` (plain {dtype, shape, data}) and returns its outputs so. */
function bound(model, inputs, names) {
  const ordered = byName(inputs, names, model.inputs, 'litert');
  return async () => {
    const compiled = await compiledAt(model, ordered[0].shape[0]);
    const xs = ordered.map((x) => new litert.Tensor(x.data, x.shape));
    let ys;
    try {
      ys = await compiled.run(Object.fromEntries(model.inputs.map((name, i) => [name, xs[i]])));
    } finally {
      xs.forEach((x) => x.delete());
    }
    const out = [];
    try {
      for (const name of model.outputs) {
        // A WebGPU result is read after it is moved to host memory ('wasm').
        const y = ys[name].accelerator === 'wasm' ? ys[name] : await ys[name].moveTo('wasm');
        ys[name] = y;
        const data = y.toTypedArray();
        out.push({ dtype: y.type.dtype, shape: Array.from(y.type.layout.dimensions), data });
      }
    } finally {
      Object.values(ys).forEach((y) => y.delete());
    }
    return out;
  };
}

/**
 * Runs the model under `handle` on plain inputs ({dtype, shape, data}): its
 * outputs so, in `outputs`' order, and the accelerator it was compiled for
 * (the demo page's LiteRT.js runtime calls this directly, no base64).
 */
async function run(handle, inputs, names = null) {
  const model = get(handle);
  const tensors = await bound(model, inputs, names)();
  const compiled = await compiledAt(model, inputs[0].shape[0]);
  return { outputs: model.outputs, tensors, accelerator: compiled.options.accelerator };
}

async function predict(handle, inputs, names) {
  const model = get(handle);
  const call = bound(model, inputs.map(fromBase64), names);
  const started = performance.now();
  const out = await call();
  return {
    ms: performance.now() - started,
    outputs: model.outputs,
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
  const call = bound(get(handle), inputs.map(fromBase64), names);
  return { ...(await timeCalls(call, options)), ...memory() };
}

function dispose(handle) {
  get(handle).compiled.forEach((compiled) => compiled.delete());
  models.delete(handle);
}

globalThis.litertBridge = { start, load, predict, bench, memory, dispose };
module.exports = { start, load, run, dispose };
