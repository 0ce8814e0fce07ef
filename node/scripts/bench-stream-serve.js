'use strict';
// serve's sequence batcher under load against what users do without it, in
// one run, on one service (node/serve.js, started here on 127.0.0.1):
//   stream   N clients, each feeding whole sequences one step per request to
//            POST /v1/models/NAME:stream (start, steps, end, the next one)
//   prefix   N clients, each calling POST /v1/models/NAME_prefix:predict on
//            its growing prefix (1 step, then 2, ... then the whole sequence)
// and steps/s for each: a step is one more step of a sequence answered.
// Every answer is checked, within --atol, against the stream path computed
// here (lib/layers/stream.js on the same layers model, every step's output:
// what Keras gives on each prefix, tests/test_streaming.py); a wrong answer or
// a non-200 is counted. Each side is an autocannon run, one connection per
// client, one request in flight on each. The model's time axis is fixed (a registry model),
// so the prefix side serves a copy of its layers model with a free time axis
// (a temporary folder; the model folder is only read), on the layers path:
// the only path a prefix of any length can run on. The prefix clients are
// at different points of their sequences (client c starts at step c mod T),
// as independent users are; --lockstep starts them all at step 1, so that
// prefixes of one length arrive together and batch (the service batches
// requests only when their shapes agree).
//
//   node node/scripts/bench-stream-serve.js --model shared_models/gru [--clients 256] [--duration 20]
const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { main, parseCommandLine, UsageError } = require('../lib/runtime/cli');

const USAGE =
  'usage: bench-stream-serve.js --model DIR [--clients 256] [--duration 20] [--sequences 16] ' +
  '[--atol 1e-5] [--lockstep]  (steps/s through serve :stream vs :predict on growing prefixes; prints JSON)';

const SERVE = path.join(__dirname, '..', 'serve.js');

function parse() {
  const { values } = parseCommandLine(
    {
      options: {
        model: { type: 'string' },
        clients: { type: 'string', default: '256' },
        duration: { type: 'string', default: '20' },
        sequences: { type: 'string', default: '16' },
        atol: { type: 'string', default: '1e-5' },
        lockstep: { type: 'boolean', default: false },
      },
    },
    USAGE,
  );
  if (!values.model) throw new UsageError(`--model is required (${USAGE})`);
  const positive = (name, integer = true) => {
    const value = Number(values[name]);
    if (!(value > 0) || (integer && !Number.isInteger(value)))
      throw new UsageError(
        `--${name} must be a positive ${integer ? 'integer' : 'number'}, got '${values[name]}'`,
      );
    return value;
  };
  const dir = path.resolve(values.model);
  if (!fs.existsSync(path.join(dir, 'manifest.json')))
    throw new UsageError(`--model ${values.model}: no manifest.json there`);
  return {
    dir,
    clients: positive('clients'),
    duration: positive('duration', false),
    sequences: positive('sequences'),
    atol: positive('atol', false),
    lockstep: values.lockstep,
  };
}

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/**
 * A copy of `dir`'s layers model and manifest whose time axis is free, in a
 * temporary folder: the layers model.json's input shape and the manifest's
 * signature say so, and the manifest records the new model.json's sha256.
 */
function freeTimeAxisCopy(dir) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-stream-serve-'));
  fs.cpSync(path.join(dir, 'tfjs_layers'), path.join(out, 'tfjs_layers'), { recursive: true });
  const modelJson = path.join(out, 'tfjs_layers', 'model.json');
  const model = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
  const first = model.modelTopology.model_config.config.layers[0].config;
  if (!first.batch_input_shape || first.batch_input_shape.length < 3)
    throw new Error(
      `${dir}: not a sequence model (its input shape is [${first.batch_input_shape}])`,
    );
  first.batch_input_shape[1] = null;
  fs.writeFileSync(modelJson, JSON.stringify(model));
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  manifest.signature.inputs[0].shape[0] = null;
  manifest.conversions.layers.files['model.json'] = sha256(modelJson);
  fs.writeFileSync(path.join(out, 'manifest.json'), JSON.stringify(manifest));
  return out;
}

/** `count` sequences of the model's length, seeded, within its input's domain, and every step's output on the stream path. */
async function references(dir, count) {
  const { tf } = require('../lib/runtime/tfnode');
  const { loadModel } = require('../lib/runtime/models');
  const { openStreams } = require('../lib/layers/stream');
  const { seeded } = require('../lib/runtime/streaming');
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const [spec] = manifest.signature.inputs;
  if (spec.kind === 'tokens') throw new UsageError('token-id models are not benched here yet');
  const runner = await loadModel(tf, dir, 'layers');
  const rand = seeded(24);
  const [steps, ...stepShape] = spec.shape;
  const size = stepShape.reduce((a, b) => a * b, 1);
  const low = spec.low ?? 0;
  const high = spec.high ?? 1;
  const x = Float32Array.from({ length: count * steps * size }, () => low + rand() * (high - low));
  const streams = openStreams(tf, runner.model, { batch: count });
  const y = streams.feed(tf.tensor(x, [count, steps, ...stepShape]));
  const want = y.arraySync();
  tf.dispose(y);
  streams.dispose();
  runner.dispose();
  const inputs = Array.from({ length: count }, (_, s) =>
    Array.from({ length: steps }, (_, t) =>
      Array.from(x.subarray((s * steps + t) * size, (s * steps + t + 1) * size)),
    ),
  );
  return { inputs, want, steps };
}

/** Starts serve.js with both models; resolves to {port, child} once it listens. */
function startService(dir, prefixDir, clients) {
  const args = [
    SERVE,
    '--port',
    '0',
    '--model',
    `model=${dir}`,
    '--model',
    `model_prefix=${prefixDir}`,
    '--format',
    'layers',
    '--max-sequences',
    String(2 * clients),
    '--max-stream-batch',
    String(clients),
    '--queue-limit',
    String(Math.max(1024, 2 * clients)),
    '--reload-interval-ms',
    '0',
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let said = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text) => {
      said += text;
      const found = said.match(/listening on http:\/\/[\d.]+:(\d+)/);
      if (found) resolve({ port: Number(found[1]), child, said });
    });
    child.on('exit', (code) =>
      reject(
        new Error(`serve.js exited (${code}) before listening: ${said.trim().split('\n').pop()}`),
      ),
    );
  });
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** CPU seconds of the service's processes and this client while `run` runs. */
async function withCpu(pids, run) {
  const before = pids.map(cpuSeconds);
  const self = process.cpuUsage();
  const figures = await run();
  const used = pids.map((pid, i) => cpuSeconds(pid) - before[i]);
  const client = process.cpuUsage(self);
  figures.cpu_s = {
    http_process: used[0],
    worker: used[1],
    client: (client.user + client.system) / 1e6,
  };
  return figures;
}

const closeTo = (got, want, atol) =>
  Array.isArray(got) &&
  got.length === want.length &&
  got.every((v, i) => Math.abs(v - want[i]) <= atol);

/**
 * autocannon on `url` for `duration` s, one connection per client, each
 * cycling through requestsFor(client): its steps, in order. Each request
 * carries `expect` (the answer it must get, checked within atol) and a
 * body, or setupRequest() for a body that changes each time round.
 */
async function load(url, clients, duration, requestsFor, atol) {
  const autocannon = require('autocannon');
  const counts = { right: 0, wrong: 0 };
  const checked = (expect) => (status, text) => {
    if (status !== 200) {
      if (!counts.firstFailure) counts.firstFailure = `${status} ${text.slice(0, 200)}`;
      return; // counted by autocannon as non-2xx
    }
    const answer = JSON.parse(text).predictions;
    counts[closeTo(answer && answer[0], expect, atol) ? 'right' : 'wrong'] += 1;
  };
  const latencies = [];
  let next = 0;
  const instance = autocannon({
    url,
    connections: clients,
    duration,
    timeout: 60,
    // every connection gets its own list (its own sequence ids); this one
    // is only built by autocannon before setupClient replaces it
    requests: requestsFor(0),
    setupClient: (client) => {
      const c = next++;
      client.setRequests(requestsFor(c).map((r) => ({ ...r, onResponse: checked(r.expect) })));
    },
  });
  instance.on('response', (_client, status, _bytes, ms) => {
    if (status === 200) latencies.push(ms);
  });
  const result = await instance;
  const sorted = Float64Array.from(latencies).sort();
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return {
    steps_per_s: counts.right / result.duration,
    answered_right: counts.right,
    wrong: counts.wrong,
    failed: result.errors + result.non2xx + result.timeouts,
    first_failure: counts.firstFailure || null,
    seconds: result.duration,
    p50_ms: q(0.5),
    p99_ms: q(0.99),
  };
}

main(async () => {
  const options = parse();
  const { dir, clients, duration, sequences, atol, lockstep } = options;
  const { inputs, want, steps } = await references(dir, sequences);
  const prefixDir = freeTimeAxisCopy(dir);
  let service;
  try {
    service = await startService(dir, prefixDir, clients);
    const { port } = service;
    const pids = [service.child.pid, Number(service.said.match(/pids (\d+)/)[1])];
    const base = `http://127.0.0.1:${port}/v1/models`;
    const json = { method: 'POST', headers: { 'content-type': 'application/json' } };
    // :predict on the growing prefix: client c feeds sequence c % count, from step c % steps
    const prefixRequests = (client) => {
      const s = client % sequences;
      return Array.from({ length: steps }, (_, k) => {
        const t = (k + (lockstep ? 0 : client)) % steps;
        const body = JSON.stringify({ instances: [inputs[s].slice(0, t + 1)] });
        return { ...json, path: '/v1/models/model_prefix:predict', body, expect: want[s][t] };
      });
    };
    const prefix = await withCpu(pids, () =>
      load(`${base}/model_prefix:predict`, clients, duration, prefixRequests, atol),
    );
    // :stream: the same sequences, one step a request, a new sequence id each time round
    const streamRequests = (client) => {
      const s = client % sequences;
      let round = 0;
      return Array.from({ length: steps }, (_, t) => ({
        ...json,
        path: '/v1/models/model:stream',
        expect: want[s][t],
        setupRequest: (request) => {
          if (t === 0) round += 1;
          const body = { sequence_id: `c${client}-${round}`, instances: [inputs[s][t]] };
          if (t === 0) body.sequence_start = true;
          if (t === steps - 1) body.sequence_end = true;
          return { ...request, body: JSON.stringify(body) };
        },
      }));
    };
    const stream = await withCpu(pids, () =>
      load(`${base}/model:stream`, clients, duration, streamRequests, atol),
    );
    const metrics = await new Promise((resolve, reject) =>
      http
        .get({ host: '127.0.0.1', port, path: '/metrics' }, (response) => {
          let text = '';
          response.on('data', (chunk) => (text += chunk));
          response.on('end', () => resolve(text));
        })
        .on('error', reject),
    );
    const metric = (name, labels = '{model="model"}') => {
      const line = metrics.split('\n').find((l) => l.startsWith(`${name}${labels}`));
      return line ? Number(line.split(' ').pop()) : null;
    };
    const batches = metric('tfjs_bridge_sequence_batch_steps_count');
    stream.batches = batches;
    stream.steps_per_batch = metric('tfjs_bridge_sequence_batch_steps_sum') / batches;
    stream.worker_ms_per_batch =
      (1000 * metric('tfjs_bridge_sequence_batch_duration_seconds_sum')) / batches;
    const prefixBatches = metric('tfjs_bridge_batch_size_count', '{model="model_prefix"}');
    prefix.batches = prefixBatches;
    prefix.samples_per_batch =
      metric('tfjs_bridge_batch_size_sum', '{model="model_prefix"}') / prefixBatches;
    prefix.worker_ms_per_batch =
      (1000 *
        metric(
          'tfjs_bridge_batch_duration_seconds_sum',
          '{model="model_prefix",path="tfjs-node/layers"}',
        )) /
      prefixBatches;
    const report = {
      model: dir,
      clients,
      duration_s: duration,
      prefix_clients: lockstep ? 'in lockstep' : 'spread over the sequence',
      steps_per_sequence: steps,
      atol,
      stream,
      prefix,
      ratio: stream.steps_per_s / prefix.steps_per_s,
      load_average: os.loadavg(),
      cpus: os.cpus().length,
      node: process.versions.node,
      when: new Date().toISOString(),
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    if (service) {
      const exited = new Promise((resolve) => service.child.once('exit', resolve));
      service.child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(prefixDir, { recursive: true, force: true });
  }
}, USAGE);
