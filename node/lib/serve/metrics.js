'use strict';
// The service's Prometheus metrics (prom-client), one registry per service.
// Labels: model (the name in the URL), path (the runtime it runs on, such as
// tfjs-node/layers), code (HTTP status), kind (why a request failed).
const client = require('prom-client');

const PREFIX = 'tfjs_bridge_';
// Batch sizes are counted in samples; latency in seconds, from 0.5 ms to 10 s.
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const STEP_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: PREFIX });
  const make = (Type, name, help, labelNames, extra = {}) =>
    new Type({ name: PREFIX + name, help, labelNames, registers: [registry], ...extra });

  const requests = make(
    client.Counter,
    'requests_total',
    'Predict requests answered, by status code.',
    ['model', 'code'],
  );
  const errors = make(client.Counter, 'request_errors_total', 'Requests that failed, by kind.', [
    'model',
    'kind',
  ]);
  const samples = make(client.Counter, 'samples_total', 'Samples predicted.', ['model']);
  const batchSize = make(client.Histogram, 'batch_size', 'Samples per batch run.', ['model'], {
    buckets: BATCH_BUCKETS,
  });
  const queueDepth = make(client.Gauge, 'queue_depth', 'Samples waiting for a worker.', ['model']);
  const latency = make(
    client.Histogram,
    'request_duration_seconds',
    'Predict request latency, body read to answer.',
    ['model', 'path'],
    { buckets: LATENCY_BUCKETS },
  );
  const batchLatency = make(
    client.Histogram,
    'batch_duration_seconds',
    'Time a batch spends in its worker process.',
    ['model', 'path'],
    { buckets: LATENCY_BUCKETS },
  );
  const restarts = make(client.Counter, 'worker_restarts_total', 'Worker processes restarted.', []);
  const reloads = make(client.Counter, 'model_reloads_total', 'Model folder reloads, by result.', [
    'model',
    'result',
  ]);
  const signals = make(client.Counter, 'signals_total', 'Signals handled, by name.', ['signal']);
  // :stream's sequence batcher (sequences.js)
  const liveSequences = make(
    client.Gauge,
    'live_sequences',
    'Sequences started and not yet ended, expired or lost.',
    ['model'],
  );
  const sequenceBatch = make(
    client.Histogram,
    'sequence_batch_steps',
    'Sequences per batched step of :stream (one step, or one chunk of steps, each).',
    ['model'],
    { buckets: STEP_BUCKETS },
  );
  const sequenceBatchLatency = make(
    client.Histogram,
    'sequence_batch_duration_seconds',
    'Time a batched step of :stream spends in its worker process.',
    ['model'],
    { buckets: LATENCY_BUCKETS },
  );
  const stepLatency = make(
    client.Histogram,
    'sequence_step_duration_seconds',
    'Latency of one :stream step, queued to answered.',
    ['model'],
    { buckets: LATENCY_BUCKETS },
  );
  const sequencesClosed = make(
    client.Counter,
    'sequences_closed_total',
    'Sequences freed, by why: ended, expired, lost (their worker died), restarted.',
    ['model', 'why'],
  );

  return {
    registry,
    forModel: (model) => ({
      batchRows: (rows) => batchSize.observe({ model }, rows),
      queueDepth: (n) => queueDepth.set({ model }, n),
    }),
    forSequences: (model) => ({
      live: (n) => liveSequences.set({ model }, n),
      batch: (steps, seconds) => {
        sequenceBatch.observe({ model }, steps);
        sequenceBatchLatency.observe({ model }, seconds);
      },
      stepTime: (seconds) => stepLatency.observe({ model }, seconds),
      closed: (why) => sequencesClosed.inc({ model, why }),
    }),
    answered: (model, code, seconds, path) => {
      requests.inc({ model, code: String(code) });
      if (seconds !== null) latency.observe({ model, path }, seconds);
    },
    failed: (model, kind) => errors.inc({ model, kind }),
    predicted: (model, n) => samples.inc({ model }, n),
    batchTime: (model, path, seconds) => batchLatency.observe({ model, path }, seconds),
    restarted: () => restarts.inc(),
    reloaded: (model, result) => reloads.inc({ model, result }),
    signal: (name) => signals.inc({ signal: name }),
    text: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

module.exports = { createMetrics };
