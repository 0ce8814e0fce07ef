'use strict';
// The page's half of an ONNX Runtime Web browser worker ('chromium-ort-wasm',
// 'chromium-ort-webgpu'; bundle.js builds it, driver.js calls it through
// page.evaluate). It answers what page.js answers for tfjs (start = hello,
// load, predict, bench, memory, dispose), with no tfjs in the page:
// onnxruntime-web (served by server.js: globalThis.ort) runs the folder's
// .onnx through runners.js's onnxRunner, the very code that runs it on
// onnxruntime-node. Tensors cross as base64 of their raw little-endian
// bytes, as page.js's do.
//
// Two of its builds: ort.wasm.min.js (the wasm execution provider) and
// ort.webgpu.min.js (`onnxruntime-web/webgpu`: the WebGPU provider written in
// C++, on the asyncify .wasm). On WebGPU, ONNX Runtime puts each node it has
// no WebGPU kernel for on its CPU provider (the same .wasm) without a word;
// the page reads where each node went from the session's own log and
// refuses a model of which no node runs on WebGPU.
const { onnxRunner, timeCalls } = require('../runtime/runners');

const { toBase64, fromBase64 } = require('./wire');
const models = new Map();

const state = { provider: null, logLines: null };
// ONNX Runtime's names for the providers a node can be placed on.
const PROVIDER_NAMES = { wasm: 'CPUExecutionProvider', webgpu: 'WebGpuExecutionProvider' };

const ortOf = () => {
  if (!globalThis.ort) throw new Error('onnxruntime-web did not load in the page');
  return globalThis.ort;
};

/** What the browser's WebGPU adapter is (on a machine with no GPU: SwiftShader). */
async function webgpuAdapter() {
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  if (!adapter) {
    throw new Error('this browser has no WebGPU adapter (Chromium needs --enable-unsafe-webgpu)');
  }
  const { vendor, architecture, device, description } = adapter.info;
  const fallback = adapter.info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? null;
  return { vendor, architecture, device, description, is_fallback_adapter: fallback };
}

/**
 * Points onnxruntime-web at our server's WebAssembly, on one thread (threads
 * need cross-origin isolation, which the server does not send). For webgpu,
 * refuses a browser without an adapter rather than run on the CPU.
 */
async function start(backend, { wasmPaths }) {
  if (!PROVIDER_NAMES[backend]) {
    throw new Error(`this page runs ONNX Runtime Web's wasm or webgpu, not ${backend}`);
  }
  const ort = ortOf();
  const adapter = backend === 'webgpu' ? await webgpuAdapter() : undefined;
  ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.wasm.numThreads = 1;
  state.provider = backend;
  if (backend === 'webgpu') routeOrtLog();
  return {
    backend,
    engine: 'ort',
    execution_provider: backend,
    ...(adapter ? { webgpu_adapter: adapter } : {}),
    onnxruntime_web: ort.env.versions.web,
    threads: ort.env.wasm.numThreads,
    user_agent: navigator.userAgent,
  };
}

/**
 * Where ONNX Runtime placed the model's nodes ({provider: {count, ops}}), read
 * from the "Node placements" a session logs at verbose level: the only place
 * onnxruntime-web says it. With one provider it logs "All nodes placed on
 * [P]. Number of nodes: N"; with several, a "Node(s) placed on" line per
 * provider, then each node (op type and name). The copies it inserts
 * between providers (Memcpy*) are not counted.
 */
function placementsFrom(lines) {
  const placed = {};
  let current = null;
  for (const line of lines) {
    const head = /(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)/.exec(line);
    if (head) {
      current = placed[head[1]] = { count: Number(head[2]), ops: [] };
      continue;
    }
    const node = /VerifyEachNodeIsAssignedToAnEp\]\s+(\w+) \(/.exec(line);
    if (!current || !node) continue;
    if (node[1].startsWith('Memcpy')) current.count -= 1;
    else if (!current.ops.includes(node[1])) current.ops.push(node[1]);
  }
  return placed;
}

/**
 * ONNX Runtime's log reaches console.error through a function its WebAssembly
 * module takes when it is instantiated (at the first session), so the
 * page's own is put in place before that, once: it hands lines to the
 * session being read, and every other line to the console as before.
 */
function routeOrtLog() {
  const original = console.error.bind(console);
  console.error = (...args) =>
    state.logLines ? state.logLines.push(args.join(' ')) : original(...args);
}

/**
 * A session made only to read its node placements: ONNX Runtime logs them
 * at verbose level, and a session left verbose logs every kernel it runs.
 */
async function placementsOf(ort, bytes, options) {
  state.logLines = [];
  let session;
  let lines;
  try {
    session = await ort.InferenceSession.create(bytes, { ...options, logSeverityLevel: 0 });
  } finally {
    lines = state.logLines;
    state.logLines = null;
  }
  await session.release();
  return placementsFrom(lines);
}

/**
 * Loads the .onnx at `url` under `handle`, on the page's execution provider
 * only (no fallback list). On webgpu, refuses a model of which ONNX Runtime
 * placed no node there, and answers where every node went.
 */
async function load(handle, url) {
  const started = performance.now();
  const ort = ortOf();
  const options = { executionProviders: [state.provider] };
  let placements;
  let source = url;
  if (state.provider === 'webgpu') {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    source = new Uint8Array(await response.arrayBuffer());
    placements = await placementsOf(ort, source, options);
    const used = placements[PROVIDER_NAMES.webgpu];
    if (!used || !used.count) {
      const where = Object.keys(placements).join(', ') || 'nowhere it logged';
      throw new Error(`ONNX Runtime Web placed no node of the model on WebGPU (${where})`);
    }
  }
  const runner = await onnxRunner(ort, source, url, options);
  models.set(handle, runner);
  return {
    outputs: runner.outputs,
    load_ms: performance.now() - started,
    ...(placements ? { placements } : {}),
  };
}

// ONNX Runtime's WebGPU provider takes an RNN op whose activation it has no
// shader for, then fails when it runs it (1.31.1: LSTM's HardSigmoid): the
// model cannot run there, said in the words verify reads as unsupported.
const NO_ACTIVATION = /Unsupported (\w+) activation for WebGPU: (\w+)/;

/** The loaded model under `handle`, its run() saying what ONNX Runtime cannot compute. */
function get(handle) {
  const runner = models.get(handle);
  if (!runner) throw new Error(`no model loaded under handle ${handle}`);
  const run = (arrays, names) =>
    runner.run(arrays, names).catch((err) => {
      const found = NO_ACTIVATION.exec(String(err && err.message));
      if (!found) throw err;
      throw new Error(
        `tfjs-bridge cannot run ONNX's ${found[1]} op with a ${found[2]} activation on ` +
          `onnxruntime-web's WebGPU execution provider, which has no shader for it`,
      );
    });
  return { ...runner, run };
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
