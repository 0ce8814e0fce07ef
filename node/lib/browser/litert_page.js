'use strict';
// The page's half of a LiteRT.js browser worker ('chromium-litert-wasm',
// 'chromium-litert-webgpu'; bundle.js builds it with @litertjs/core,
// driver.js calls it through page.evaluate). It answers what page.js answers for tfjs (start = hello,
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
// errors: what LiteRT.js and WebGPU reported since the last check (delegateCheck).
// guard: false only for the test that shows what a failed invoke returns.
const state = { accelerator: null, errors: [], guard: true };

/**
 * LiteRT.js reports a failed invoke only on the console: `run()` resolves
 * (with all-zero outputs, seen on WebGPU), and its native log prints
 * "ERROR: Node number 607 (LITERT_WEBGPU) failed to invoke." through the
 * console.error its WebAssembly module binds when it loads; so the page's
 * own is put in place before that. It keeps LiteRT.js's ERROR lines (its
 * warnings and INFO lines are not failures) and passes every line on.
 */
function catchLiteRtErrors() {
  const original = console.error.bind(console);
  console.error = (...args) => {
    const line = args.join(' ');
    // (an op LiteRT.js's delegate refuses comes as "ADD_N: ADD_N only supports 2 inputs.")
    if (/^(ERROR: |E\d{4} |(?!WARNING:|INFO:)[A-Z][A-Z0-9_]+: )/.test(line)) {
      state.errors.push(line.replace(/\s*\n\s*/g, ' ').slice(0, 400));
    }
    original(...args);
  };
}

/** WebGPU's own errors on LiteRT.js's device (a texture it could not make), kept likewise. */
function catchWebGpuErrors(device) {
  device.addEventListener('uncapturederror', (event) => {
    const message = String((event.error && event.error.message) || event.error).split('\n')[0];
    state.errors.push(`WebGPU: ${message}`);
  });
}

/**
 * Throws what went wrong since the last call, in one line (the runner calls
 * it after each compile and each run: no answer from a failed invoke).
 * WebGPU reports its errors as events, later than the call that made them:
 * the device's queue is drained and the event loop turned first.
 */
async function delegateCheck(what) {
  const device = state.accelerator === 'webgpu' && litert.getDefaultEnvironment().webGpuDevice;
  if (device) {
    await device.queue.onSubmittedWorkDone();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  if (!state.errors.length) return;
  const errors = state.errors.splice(0);
  const node = errors.find((e) => /Node number \d+ \(\w+\) failed to invoke/.test(e));
  const gpu = errors.find((e) => e.startsWith('WebGPU: '));
  // A failed invoke's node line, else LiteRT.js's first lines (an unsupported
  // op's list comes a line per op after its header), and WebGPU's first error.
  const native = node ? [node] : errors.filter((e) => !e.startsWith('WebGPU: ')).slice(0, 4);
  const said = [...native, ...(gpu ? [gpu] : [])].map((e) => e.replace(/^ERROR: /, ''));
  throw new Error(
    `LiteRT.js's ${state.accelerator} delegate failed while ${what}: ${said.join('; ')}`,
  );
}

/** The adapter behind LiteRT.js's WebGPU device (on a machine with no GPU: SwiftShader). */
async function webgpuAdapter(device) {
  const info = device.adapterInfo || (await navigator.gpu.requestAdapter()).info;
  const { vendor, architecture, device: name, description } = info;
  return {
    vendor,
    architecture,
    device: name,
    description,
    is_fallback_adapter: info.isFallbackAdapter ?? null,
    from: device.adapterInfo ? "LiteRT.js's device" : 'navigator.gpu.requestAdapter()',
  };
}

/**
 * Loads LiteRT.js's WebAssembly from `wasmPaths` (served by the driver) and
 * checks that `accelerator` exists here: LiteRT.js would otherwise compile
 * for WASM when a WebGPU device is missing or a model is not fully delegated.
 */
async function start(accelerator, { wasmPaths, guard = true }) {
  state.guard = guard;
  catchLiteRtErrors();
  const liteRt = await litert.loadLiteRt(wasmPaths); // single-threaded, no JSPI
  const device = litert.getDefaultEnvironment().webGpuDevice;
  if (accelerator === 'webgpu' && !device) {
    throw new Error('LiteRT.js found no WebGPU device in this browser');
  }
  state.accelerator = accelerator;
  if (accelerator === 'webgpu') catchWebGpuErrors(device);
  state.errors.length = 0; // (loading's own lines: an NPU it has no library for)
  return {
    backend: accelerator,
    engine: 'litert',
    relaxed_simd: await litert.supportsFeature('relaxedSimd'),
    jspi: await litert.supportsFeature('jspi'),
    threads: liteRt.liteRtWasm.getThreadCount(),
    webgpu_device: Boolean(device),
    delegate_error_guard: state.guard,
    ...(accelerator === 'webgpu' ? { webgpu_adapter: await webgpuAdapter(device) } : {}),
    user_agent: navigator.userAgent,
  };
}

async function fetched(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Loads the .tflite at `url` under `handle`, compiled at a batch of one; on
 * WebGPU, the files converted at static batches instead (`statics`: {batch: url}).
 */
async function load(handle, url, format, statics = null) {
  const started = performance.now();
  state.errors.length = 0; // (another model's late errors are not this one's)
  let bytes = null;
  let staticFiles = null;
  if (statics) {
    const batches = Object.keys(statics);
    const files = await Promise.all(batches.map((b) => fetched(statics[b])));
    staticFiles = Object.fromEntries(batches.map((b, i) => [b, files[i]]));
  } else {
    bytes = await fetched(url);
  }
  const runner = await tfliteRunner(litert, bytes, state.accelerator, 'litert', {
    staticFiles,
    check: state.guard ? delegateCheck : null,
  });
  models.set(handle, runner);
  return {
    outputs: runner.outputs,
    load_ms: performance.now() - started,
    ...(statics ? { static_batches: runner.staticBatches } : {}),
  };
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
