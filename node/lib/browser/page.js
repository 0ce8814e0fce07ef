'use strict';
// The page's half of a browser worker (bundle.js builds it for the browser;
// lib/browser/driver.js calls it through page.evaluate). It answers what
// node/worker.js answers (start = hello, load, predict, bench, memory,
// dispose) with the page's tfjs (tf.min.js: globalThis.tf) and the same
// runners.js and layers that Node runs. Tensors cross as base64 of their
// raw little-endian bytes, so every bit survives (NaN payloads, -0.0).
const { installKerasLayers, feedEachTensorOnce } = require('../layers');
const {
  layersRunner,
  graphArtifactsFor,
  graphRunner,
  bind,
  timeCalls,
} = require('../runtime/runners');

const { toBase64, fromBase64 } = require('./wire');
const models = new Map();
const state = { backend: null, classes: null, gpuError: null };

const tfOf = () => globalThis.tf;

/** The WebGL renderer tfjs's context runs on (unmasked where the browser allows). */
function webglInfo(tf) {
  const gl = tf.backend().gpgpu.gl;
  const debug = gl.getExtension('WEBGL_debug_renderer_info');
  return {
    renderer: gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER),
    vendor: gl.getParameter(debug ? debug.UNMASKED_VENDOR_WEBGL : gl.VENDOR),
    webgl_version: tf.env().getNumber('WEBGL_VERSION'),
    // float16 render targets would round every intermediate to ~3 digits
    float32_render: tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED'),
  };
}

async function webgpuInfo() {
  const adapter = await navigator.gpu.requestAdapter();
  const info = adapter && (adapter.info || (await adapter.requestAdapterInfo()));
  if (!info) return { renderer: null };
  const { vendor, architecture, device, description } = info;
  return { renderer: description || [vendor, architecture, device].filter(Boolean).join(' ') };
}

/**
 * Sets the backend and refuses a fallback: when setBackend fails tfjs quietly
 * picks another backend, and a path would report figures of the wrong one.
 */
async function start(backend, { wasmPaths, layers = true }) {
  const tf = tfOf();
  if (!tf) throw new Error('tf.min.js did not load in the page');
  if (backend === 'wasm') tf.wasm.setWasmPaths(wasmPaths);
  let ok;
  try {
    ok = await tf.setBackend(backend);
    await tf.ready();
  } catch (err) {
    throw new Error(`the ${backend} backend failed to start in this browser: ${err.message}`, {
      cause: err,
    });
  }
  const inUse = tf.getBackend();
  if (!ok || inUse !== backend) {
    throw new Error(
      `the ${backend} backend did not start in this browser (tfjs fell back to ${inUse})`,
    );
  }
  tf.tidy(() => tf.add(1, 1).dataSync());
  state.backend = backend;
  // layers=false: tfjs's stock classes only (a control; TFJS_BRIDGE_PAGE_LAYERS=stock)
  state.classes = layers ? installKerasLayers(tf) : {};
  const info = {
    backend: inUse,
    tfjs: tf.version.tfjs,
    user_agent: navigator.userAgent,
    bridge_layers: Object.keys(state.classes),
  };
  if (backend === 'webgl') Object.assign(info, webglInfo(tf));
  if (backend === 'webgpu') {
    Object.assign(info, await webgpuInfo());
    // A shader that fails to compile is only an event: the calls after it
    // return garbage. Keep the first, and fail every call from then on.
    tf.backend().device.addEventListener('uncapturederror', (event) => {
      state.gpuError = state.gpuError || String(event.error.message).split('\n')[0];
    });
  }
  if (backend === 'wasm') {
    info.wasm_simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
    info.wasm_threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
  }
  return info;
}

/** Which of the model's layers are instances of tfjs-bridge's classes (the bundle's). */
function bridgeLayers(model) {
  const ours = Object.values(state.classes);
  const isOurs = (obj) => obj && ours.some((cls) => obj instanceof cls);
  return model.layers
    .filter((l) => [l, l.cell, l.forwardLayer, l.backwardLayer].some(isOurs))
    .map((l) => l.name);
}

/** Loads the model.json at `url` (served by the driver) under `handle`. */
async function load(handle, url, format) {
  const tf = tfOf();
  const started = performance.now();
  const artifacts = await tf.io.http(url).load();
  let runner;
  if (format === 'layers') {
    const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    runner = layersRunner(feedEachTensorOnce(tf, model), url);
  } else if (format === 'graph') {
    const fit = graphArtifactsFor(tf, artifacts);
    runner = graphRunner(await tf.loadGraphModel(tf.io.fromMemory(fit)), fit.signature, url);
  } else {
    throw new Error(`the ${format} format does not run in a browser (layers or graph)`);
  }
  models.set(handle, runner);
  return {
    outputs: runner.outputs,
    load_ms: performance.now() - started,
    bridge_layers: format === 'layers' ? bridgeLayers(runner.model) : [],
  };
}

/** Throws once the page's WebGPU device has reported an error. */
function checkGpu() {
  if (state.gpuError) throw new Error(`the page's WebGPU device reported: ${state.gpuError}`);
}

function get(handle) {
  const runner = models.get(handle);
  if (!runner) throw new Error(`no model loaded under handle ${handle}`);
  return runner;
}

async function predict(handle, inputs, names) {
  const tf = tfOf();
  const bound = bind(tf, get(handle), inputs.map(fromBase64), names);
  try {
    const started = performance.now();
    const out = await bound.call();
    checkGpu();
    return {
      ms: performance.now() - started,
      outputs: get(handle).outputs,
      tensors: out.map(({ dtype, shape, data }) => ({ dtype, shape, b64: toBase64(data) })),
    };
  } finally {
    bound.release();
  }
}

function memory() {
  const { numTensors, numBytes } = tfOf().memory();
  // (performance.memory: Chromium only)
  const heap = globalThis.performance && performance.memory;
  return {
    num_tensors: numTensors,
    num_bytes: numBytes,
    heap_used: heap ? heap.usedJSHeapSize : null,
  };
}

async function bench(handle, inputs, names, options) {
  const tf = tfOf();
  const bound = bind(tf, get(handle), inputs.map(fromBase64), names);
  try {
    const timed = await timeCalls(bound.call, options);
    checkGpu();
    return { ...timed, ...memory() };
  } finally {
    bound.release();
  }
}

function dispose(handle) {
  get(handle).dispose();
  models.delete(handle);
}

globalThis.tfjsBridge = { start, load, predict, bench, memory, dispose };
