'use strict';
// Serve model folders over HTTP with TensorFlow Serving's REST API.
//
//   node node/serve.js --model shared_models/gru [--model spam=shared_models/spam] [--port 8501]
//   curl -d '{"instances": [[[0, ...], ...]]}' http://127.0.0.1:8501/v1/models/gru:predict
//   curl -d '{"sequence_id": "a", "sequence_start": true, "instances": [[0, ...]]}' \
//     http://127.0.0.1:8501/v1/models/gru:stream      (one step of a sequence; docs/streaming.md)
//
// Each model runs on the fastest path `tfjs-bridge verify` passed for its
// folder (lib/runtime/choose.js) unless --format says, in worker processes (lib/serve/pool.js);
// this process handles HTTP and signals and loads no TensorFlow. Requests
// that arrive together are batched (lib/serve/batcher.js).
//
// Signals: SIGTERM/SIGINT finish the requests in flight, refuse new ones
// (503) and exit 0; SIGHUP reloads changed model folders now (they are also
// polled); SIGUSR1 and SIGUSR2 are only counted (/metrics), so a stray
// SIGUSR1 cannot open Node's inspector on a service.
//
// --http-processes N (N >= 2): N HTTP processes (Node's cluster) share the
// port and hand each checked request to this process, which keeps the one
// worker pool, the batchers and the :stream sequence table (lib/serve/hub.js,
// lib/serve/front.js; docs/serving.md).
const cluster = require('cluster');
const os = require('os');
const path = require('path');
const { main, UsageError, parseCommandLine } = require('./lib/runtime/cli');

const USAGE =
  'usage: serve.js --model [NAME=]DIR [--model ...] [--host 127.0.0.1] [--port 8501] ' +
  '[--workers N] [--http-processes 1] [--max-batch 32] [--max-wait-ms 0] [--batching auto|padded|unpadded] [--queue-limit 1024] ' +
  '[--timeout-ms 10000] [--body-limit-mb 16] [--reload-interval-ms 1000] [--backend tensorflow] ' +
  '[--format layers|graph|saved_model|saved_model_xla] ' +
  '[--max-sequences 1024] [--stream-idle-ms 60000] [--max-stream-batch 256]';

// gru at concurrency 64 on 2 cores: 13,766 requests/s with 1 worker, 9,112
// with 2 (docs/serving.md).
const DEFAULT_WORKERS = 1;

function integer(args, name, min) {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got '${args[name]}'`);
  return value;
}

// More HTTP processes than 4 per core only take turns on the cores.
const MAX_HTTP_PER_CORE = 4;

function httpProcesses(given) {
  const most = MAX_HTTP_PER_CORE * os.availableParallelism();
  const value = Number(given);
  if (!Number.isInteger(value) || value < 1 || value > most)
    throw new UsageError(
      `--http-processes must be an integer from 1 to ${most} (${MAX_HTTP_PER_CORE} per core, ${os.availableParallelism()} cores), got '${given}'`,
    );
  return value;
}

function parse() {
  const args = parseCommandLine(
    {
      options: {
        model: { type: 'string', multiple: true },
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '8501' },
        workers: { type: 'string', default: String(DEFAULT_WORKERS) },
        'http-processes': { type: 'string', default: '1' },
        'max-batch': { type: 'string', default: '32' },
        'max-wait-ms': { type: 'string', default: '0' },
        batching: { type: 'string', default: 'auto' },
        'queue-limit': { type: 'string', default: '1024' },
        'timeout-ms': { type: 'string', default: '10000' },
        'body-limit-mb': { type: 'string', default: '16' },
        'reload-interval-ms': { type: 'string', default: '1000' },
        backend: { type: 'string', default: 'tensorflow' },
        format: { type: 'string' },
        'max-sequences': { type: 'string', default: '1024' },
        'stream-idle-ms': { type: 'string', default: '60000' },
        'max-stream-batch': { type: 'string', default: '256' },
      },
    },
    USAGE,
  ).values;
  if (!args.model) throw new UsageError(`--model is required (${USAGE})`);
  const models = args.model.map((spec) => {
    const at = spec.indexOf('=');
    const dir = path.resolve(at < 0 ? spec : spec.slice(at + 1));
    const name = at < 0 ? path.basename(dir) : spec.slice(0, at);
    if (!/^[A-Za-z0-9_.-]+$/.test(name))
      throw new UsageError(`model name '${name}': use letters, digits, '_', '.' or '-'`);
    return { name, dir };
  });
  const maxBatch = integer(args, 'max-batch', 1);
  if (!['auto', 'padded', 'unpadded'].includes(args.batching))
    throw new UsageError(`--batching must be auto, padded or unpadded, got '${args.batching}'`);
  const queueLimit = integer(args, 'queue-limit', 1);
  if (queueLimit < maxBatch)
    throw new UsageError(
      `--queue-limit (${queueLimit}) must be at least --max-batch (${maxBatch})`,
    );
  return {
    models,
    host: args.host,
    port: integer(args, 'port', 0),
    workers: integer(args, 'workers', 1),
    httpProcesses: httpProcesses(args['http-processes']),
    backend: args.backend,
    format: args.format || null,
    batching: {
      maxBatch,
      maxWaitMs: integer(args, 'max-wait-ms', 0),
      queueLimit,
      mode: args.batching,
    },
    // :stream (lib/serve/sequences.js): live sequences per model (0: no :stream)
    streaming: {
      maxSequences: integer(args, 'max-sequences', 0),
      idleMs: integer(args, 'stream-idle-ms', 1),
      maxBatch: integer(args, 'max-stream-batch', 1),
    },
    timeoutMs: integer(args, 'timeout-ms', 1),
    bodyLimit: integer(args, 'body-limit-mb', 1) * 2 ** 20,
    reloadIntervalMs: integer(args, 'reload-interval-ms', 0),
  };
}

const say = (line) => process.stdout.write(`${line}\n`);

async function serve(options) {
  // an HTTP process of --http-processes N: fastify only, the rest in the primary
  if (cluster.isWorker) return require('./lib/serve/front').runHttpProcess(options);
  // Required here, not at the top: --help and usage errors stay instant.
  const { Pool } = require('./lib/serve/pool');
  const { Catalog } = require('./lib/serve/catalog');
  const { createMetrics } = require('./lib/serve/metrics');
  const { buildApp } = require('./lib/serve/app');
  const { Hub } = require('./lib/serve/hub');
  const { BACKENDS } = require('./lib/runtime/vocabulary');
  if (!Object.hasOwn(BACKENDS, options.backend) || options.backend === 'onnxruntime')
    throw new UsageError(`--backend must be tensorflow, cpu or wasm, got '${options.backend}'`);

  const metrics = createMetrics();
  const state = { ready: false, closing: false };
  let catalog = null;
  let hub = null;
  const pool = new Pool({
    size: options.workers,
    backend: options.backend,
    events: {
      free: () => catalog && catalog.pump(),
      restart: (worker) => {
        metrics.restarted();
        if (catalog) catalog.loseSequences(); // their states died with the worker
        say(`worker ${worker.index} (pid ${worker.pid}) ${worker.exited}: starting it again`);
      },
    },
  });
  catalog = new Catalog({
    pool,
    metrics,
    backend: options.backend,
    format: options.format,
    batching: options.batching,
    streaming: options.streaming,
    log: say,
    switched: (entry, old) => hub && hub.switched(entry, old),
  });
  let app = null;
  let port;
  let front = '';
  try {
    await pool.ready();
    for (const { name, dir } of options.models) await catalog.add(name, dir);
    if (options.httpProcesses === 1) {
      app = buildApp({
        catalog,
        metrics,
        bodyLimit: options.bodyLimit,
        timeoutMs: options.timeoutMs,
        state,
      });
      await app.listen({ host: options.host, port: options.port });
      ({ port } = app.server.address());
    } else {
      hub = new Hub({ catalog, metrics, count: options.httpProcesses, log: say });
      const started = await hub.start();
      port = started.port;
      front = `; ${options.httpProcesses} HTTP processes: ${started.pids.join(' ')}`;
    }
  } catch (err) {
    if (hub) await hub.close();
    await pool.stop(1000);
    throw err;
  }
  const stopWatching = catalog.watch(options.reloadIntervalMs);
  state.ready = true;
  say(
    `listening on http://${options.host}:${port} (${options.workers} worker process(es), ` +
      `pids ${pool.pids().join(' ')}; batches of up to ${options.batching.maxBatch}${front})`,
  );

  let reloading = false;
  const handlers = {
    SIGHUP: () => {
      if (reloading) return;
      reloading = true;
      catalog.checkForChanges().finally(() => (reloading = false));
    },
    SIGUSR1: () => {},
    SIGUSR2: () => {},
    SIGCHLD: () => {},
  };
  for (const [signal, handler] of Object.entries(handlers)) {
    process.on(signal, () => {
      metrics.signal(signal);
      handler();
    });
  }
  await new Promise((resolve) => {
    const shutdown = (signal) => {
      metrics.signal(signal);
      if (state.closing) return;
      state.closing = true;
      say(`${signal}: finishing the requests in flight, then exiting`);
      stopWatching();
      // close() stops accepting, answers 503 on kept-alive connections, and
      // waits for the requests in flight, which wait for their batches.
      (hub ? hub.close() : app.close()).then(() => pool.stop()).then(resolve);
    };
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
  });
  catalog.drain(Object.assign(new Error('shutting down'), { kind: 'unavailable' }));
}

main(() => serve(parse()), USAGE);
