'use strict';
// A long-lived Node process that loads converted models and runs them, driven
// by Python (py/tfjs_bridge/runtime/worker_process.py) over the framed protocol of
// lib/io/protocol.js on stdin/stdout. One backend per process:
//
//   node node/worker.js --backend tensorflow|cpu|wasm|onnxruntime|litert
//   node node/worker.js --backend chromium-webgl     (a browser: lib/browser/driver.js)
//
// Requests: hello | load {model_dir, format, stream?, free_time?} | predict {handle, inputs?} + a tensor per input |
// bench {handle, inputs?, warmup, budget_ms, ...} + a tensor per input | memory | dispose {handle} |
// sequences_open {handle, capacity} | sequences_step {handle, slots, starts} + the chunks' tensor [n, T, ...step]
// (serve's :stream, lib/serve/sequences.js).
// Replies: {id, ok: true, ...} or {id, ok: false, error}.
// stdout carries frames only; anything a library prints goes to stderr.
const { performance } = require('perf_hooks');
const { main, UsageError, parseCommandLine } = require('./lib/runtime/cli');
const { encodeFrame, FrameReader } = require('./lib/io/protocol');
const { BACKENDS, ENGINE_BACKENDS, BROWSER_BACKENDS } = require('./lib/runtime/vocabulary');
const { residentMemory } = require('./lib/runtime/memory');

const USAGE =
  `usage: worker.js [--backend ${[...Object.keys(BACKENDS), ...Object.keys(ENGINE_BACKENDS)].join('|')}|<browser>-<backend>]` +
  '  (framed requests on stdin, replies on stdout)\n' +
  `browser backends (docs/browser.md): ${Object.keys(BROWSER_BACKENDS).join(', ')}`;

const protocolOut = process.stdout;
console.log = console.error;
console.info = console.error;

function parse() {
  return parseCommandLine(
    { options: { backend: { type: 'string', default: 'tensorflow' } } },
    USAGE,
  ).values;
}

function runtimeInfo(tf, backend) {
  if (tf.litert)
    return { backend, node: process.versions.node, ...tf.litert.info, pid: process.pid };
  if (tf.ort) {
    const { version } = require('onnxruntime-node/package.json');
    return { backend, node: process.versions.node, onnxruntime_node: version, pid: process.pid };
  }
  const info = {
    backend: tf.getBackend(),
    node: process.versions.node,
    tfjs: tf.version.tfjs,
    pid: process.pid,
  };
  if (backend === 'tensorflow') {
    Object.assign(info, require('./lib/runtime/tfnode').runtimeInfo());
    // streams of at most this many multiply-adds a step run on array ops (lib/layers/stream.js)
    info.stream_array_macs_limit = require('./lib/layers/stream').ARRAY_MACS_LIMIT;
  }
  if (backend === 'wasm') {
    info.wasm_simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
    info.wasm_threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
  }
  return info;
}

function memoryFigures(tf) {
  const { numTensors, numBytes } = tf.ort || tf.litert ? {} : tf.memory();
  const { rss, heapUsed } = process.memoryUsage();
  return {
    num_tensors: numTensors ?? null,
    num_bytes: numBytes ?? null,
    rss,
    heap_used: heapUsed,
    peak_rss: residentMemory().peak_rss, // VmHWM: lib/runtime/memory.js
  };
}

function makeHandlers(tf, backend) {
  const { loadModel, bind } = require('./lib/runtime/models');
  const { timeCalls, benchOptions } = require('./lib/runtime/runners');
  const models = new Map();
  const tables = new Map(); // handle -> the sequences' states on that layers model
  let nextHandle = 1;
  const get = (handle) => {
    const runner = models.get(handle);
    if (!runner) throw new Error(`no model loaded under handle ${handle}`);
    return runner;
  };

  return {
    hello: () => ({ result: runtimeInfo(tf, backend) }),

    // Without a format, the fastest verified path of this worker's backend (lib/runtime/choose.js).
    // `stream` ({chunks, seed, drop_state, per_step, stale_steps, ops}): the layers model fed to streams
    // in chunks (lib/runtime/streaming.js), a stream path of verify. `free_time`:
    // the layers model with its time axis freed (verify's prefix check).
    load: async ({
      model_dir: modelDir,
      format,
      batch = 32,
      stream = null,
      free_time: freeTime,
    }) => {
      const started = performance.now();
      let why = 'asked for';
      if (!format) {
        if (backend !== 'tensorflow')
          throw new Error(`load needs a format on the ${backend} backend`);
        ({ format, why } = require('./lib/runtime/choose').chooseFormat(modelDir, {
          batch,
          backends: [backend],
        }));
      }
      let runner = await loadModel(tf, modelDir, format, { freeTime: Boolean(freeTime) });
      if (stream) {
        if (format !== 'layers') throw new Error(`streams run the layers model, not ${format}`);
        const { streamRunner } = require('./lib/runtime/streaming');
        const { chunks, seed, drop_state: dropState, per_step: perStep } = stream;
        const { stale_steps: staleSteps, ops } = stream;
        runner = streamRunner(tf, runner, { chunks, seed, dropState, perStep, staleSteps, ops });
      }
      const handle = nextHandle++;
      models.set(handle, runner);
      return {
        result: {
          handle,
          format,
          why,
          outputs: runner.outputs,
          load_ms: performance.now() - started,
        },
      };
    },

    // One tensor per model input; with several, `inputs` names them.
    predict: async ({ handle, tensors, inputs = null }) => {
      if (!tensors.length) throw new Error('predict takes at least 1 input tensor, got 0');
      const bound = bind(tf, get(handle), tensors, inputs);
      try {
        const started = performance.now();
        const out = await bound.call();
        const runner = get(handle);
        const ms = performance.now() - started;
        // a stream path says which ops its streams stepped on, per batch size
        const ops = runner.streamOps ? { stream_ops: runner.streamOps() } : {};
        return { result: { ms, outputs: runner.outputs, ...ops }, tensors: out };
      } finally {
        bound.release();
      }
    },

    // Timed inside this process (runners.js's timeCalls): `warmup` untimed
    // calls, then calls until `budget_ms` is spent, each timed from the call
    // to the values read back.
    bench: async ({ handle, tensors, inputs = null, ...timing }) => {
      const bound = bind(tf, get(handle), tensors, inputs);
      try {
        const timed = await timeCalls(bound.call, benchOptions(timing));
        return { result: { ...timed, ...memoryFigures(tf) } };
      } finally {
        bound.release();
      }
    },

    // serve's sequence batcher: the states of `capacity` sequences on a loaded
    // layers model, one row each (lib/runtime/streaming.js), then steps of
    // many of them at once. TFJS_BRIDGE_TEST_MIX_SEQUENCES=1 mixes up their
    // rows: only the service's negative control sets it. TFJS_BRIDGE_STREAM_OPS
    // (auto, array, tensor) forces the batched steps' ops, to measure them side by side.
    sequences_open: ({ handle, capacity }) => {
      const { model } = get(handle);
      if (!model || typeof model.getLayer !== 'function')
        throw new Error('sequences run the layers model');
      const { sequenceTable } = require('./lib/runtime/streaming');
      const mixRows = process.env.TFJS_BRIDGE_TEST_MIX_SEQUENCES === '1';
      // the batched steps' ops, auto unless a measurement forces array or tensor
      const ops = process.env.TFJS_BRIDGE_STREAM_OPS || 'auto';
      if (tables.has(handle)) tables.get(handle).dispose();
      const table = sequenceTable(tf, model, capacity, { mixRows, ops });
      tables.set(handle, table);
      return { result: { handle, capacity, returns_sequences: table.returnsSequences } };
    },

    sequences_step: async ({ handle, tensors, slots, starts }) => {
      const table = tables.get(handle);
      if (!table) throw new Error(`no sequences opened on handle ${handle}`);
      if (tensors.length !== 1) throw new Error(`a step takes 1 tensor, got ${tensors.length}`);
      const started = performance.now();
      const [{ data, shape, dtype }] = tensors;
      const x = tf.tensor(data, shape, dtype);
      let y;
      try {
        y = table.feed(x, slots, starts); // x: [n, T, ...step], a chunk of T steps per sequence
        const out = { dtype: y.dtype, shape: y.shape, data: await y.data() };
        const ms = performance.now() - started;
        return { result: { ms, ops: table.opsOf(slots.length) }, tensors: [out] };
      } finally {
        tf.dispose([x, y]);
      }
    },

    memory: () => ({ result: memoryFigures(tf) }),

    dispose: ({ handle }) => {
      if (tables.has(handle)) tables.get(handle).dispose();
      tables.delete(handle);
      get(handle).dispose();
      models.delete(handle);
      return { result: { handle } };
    },
  };
}

/** The handlers for `backend`, and what closes it (a browser) when Python is done. */
async function startBackend(backend) {
  if (Object.hasOwn(BROWSER_BACKENDS, backend)) {
    return require('./lib/browser/driver').startBrowserWorker(backend);
  }
  if (!Object.hasOwn(BACKENDS, backend) && !Object.hasOwn(ENGINE_BACKENDS, backend)) {
    const known = [
      ...Object.keys(BACKENDS),
      ...Object.keys(ENGINE_BACKENDS),
      ...Object.keys(BROWSER_BACKENDS),
    ];
    throw new UsageError(`unknown backend '${backend}' (known: ${known.join(', ')})`);
  }
  const { loadBackend } = require('./lib/runtime/backends');
  const tf = await loadBackend(backend);
  return { handlers: makeHandlers(tf, backend), close: async () => {} };
}

main(async () => {
  const { backend } = parse();
  const { handlers, close } = await startBackend(backend);
  const reader = new FrameReader();
  let queue = Promise.resolve();

  const answer = async (request) => {
    const handler = handlers[request.op];
    let reply;
    try {
      if (!handler) throw new Error(`unknown op '${request.op}'`);
      const { result, tensors } = await handler(request);
      reply = encodeFrame({ id: request.id, ok: true, result }, tensors);
    } catch (err) {
      // One line for the reply (tfjs errors run to paragraphs); the rest to stderr.
      const message = String(err && err.message ? err.message : err);
      if (message.includes('\n')) process.stderr.write(`${message}\n`);
      reply = encodeFrame({ id: request.id, ok: false, error: message.split('\n')[0] });
    }
    protocolOut.write(reply);
  };

  await new Promise((resolve, reject) => {
    process.stdin.on('data', (chunk) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        reject(new Error(`bad frame on stdin: ${err.message}`));
        return;
      }
      for (const request of frames) queue = queue.then(() => answer(request));
    });
    // Python closed our stdin: finish what was asked, then leave.
    process.stdin.on('end', () => queue.then(resolve));
  }).finally(close);
}, USAGE);
