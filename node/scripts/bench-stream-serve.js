'use strict';
// serve's sequence batcher under load against what users do without it, in
// one run, on one service (node/serve.js, started here on 127.0.0.1):
//   stream   N clients, each feeding whole sequences one step per request
//            (--chunk K: K steps per request, answered with K outputs) to
//            POST /v1/models/NAME:stream (start, steps, end, the next one)
//   prefix   N clients, each calling POST /v1/models/NAME_prefix:predict on
//            its growing prefix (1 step, then 2, ... then the whole sequence)
// and steps/s for each: a step is one more step of a sequence answered.
// Every answer is checked, within --atol, against the stream path computed
// here (lib/layers/stream.js on the same layers model, every step's output:
// what Keras gives on each prefix, tests/test_streaming.py); a wrong answer or
// a non-200 is counted. Each side is one keep-alive connection per client,
// one request in flight on each, from a plain client on net sockets
// (--client autocannon for autocannon, which costs more CPU per request on
// the cores it shares with the service). The model's time axis is fixed (a registry model),
// so the prefix side serves a copy of its layers model with a free time axis
// (a temporary folder; the model folder is only read), on the layers path:
// the only path a prefix of any length can run on. The prefix clients are
// at different points of their sequences (client c starts at step c mod T),
// as independent users are; --lockstep starts them all at step 1, so that
// prefixes of one length arrive together and batch (the service batches
// requests only when their shapes agree). CPU seconds of the service's two
// processes and of this client are recorded for each side. --steps N makes
// the sequences N steps long (default: the model's time axis): a stream's
// step costs the same at any length, a prefix grows with it.
// --http-processes 1,2 runs both sides on a service of 1 HTTP process, then
// on one of 2 (serve --http-processes; their CPU is counted as the HTTP
// process's), in one run.
// --transport ws sends the stream side over WebSockets instead
// (GET /v1/models/NAME:stream upgraded): one connection per client, one step
// per message, one message in flight on each, each answer checked the same
// way; the prefix side stays HTTP (:predict has no WebSocket form).
//
//   node node/scripts/bench-stream-serve.js --model shared_models/gru [--clients 256] [--duration 20]
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { main, parseCommandLine, UsageError } = require('../lib/runtime/cli');
const { launchService } = require('../lib/serve/launch');

const USAGE =
  'usage: bench-stream-serve.js --model DIR [--clients 256] [--duration 20] [--sequences 16] ' +
  '[--atol 1e-5] [--lockstep] [--sides both|stream|prefix] [--client raw|autocannon] [--chunk 1] [--workers 1] [--http-processes 1[,2...]] [--steps N] [--transport http|ws]  (steps/s through serve :stream vs :predict on growing prefixes; prints JSON)';

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
        sides: { type: 'string', default: 'both' },
        client: { type: 'string', default: 'raw' },
        chunk: { type: 'string', default: '1' },
        workers: { type: 'string', default: '1' },
        'http-processes': { type: 'string', default: '1' },
        steps: { type: 'string' },
        transport: { type: 'string', default: 'http' },
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
    sides: sidesOf(values.sides),
    client: clientOf(values.client),
    chunk: positive('chunk'),
    workers: positive('workers'),
    httpProcesses: String(values['http-processes'])
      .split(',')
      .map((n) => {
        if (!/^[1-9]\d*$/.test(n))
          throw new UsageError(
            `--http-processes must be positive integers separated by commas, got '${values['http-processes']}'`,
          );
        return Number(n);
      }),
    steps: values.steps === undefined ? null : positive('steps'),
    transport: transportOf(values.transport),
  };
}

/** --sides: which of the two runs (both, for the ratio; one alone, to profile it). */
function sidesOf(value) {
  const sides = { both: ['stream', 'prefix'], stream: ['stream'], prefix: ['prefix'] }[value];
  if (!sides) throw new UsageError(`--sides must be both, stream or prefix, got '${value}'`);
  return sides;
}

/** --client: the load generator, raw (net sockets) or autocannon. */
function clientOf(value) {
  if (!['raw', 'autocannon'].includes(value))
    throw new UsageError(`--client must be raw or autocannon, got '${value}'`);
  return value;
}

/** --transport: the stream side's, a POST per step (http) or a message per step (ws). */
function transportOf(value) {
  if (!['http', 'ws'].includes(value))
    throw new UsageError(`--transport must be http or ws, got '${value}'`);
  return value;
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

/**
 * `count` sequences of `length` steps (null: the model's), seeded, within its
 * input's domain, and every step's output on the stream path.
 */
async function references(dir, count, length) {
  const { tf } = require('../lib/runtime/tfnode');
  const { loadModel } = require('../lib/runtime/models');
  const { openStreams } = require('../lib/layers/stream');
  const { seeded } = require('../lib/runtime/streaming');
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const [spec] = manifest.signature.inputs;
  if (spec.kind === 'tokens') throw new UsageError('token-id models are not benched here yet');
  const runner = await loadModel(tf, dir, 'layers', { freeTime: true });
  const rand = seeded(24);
  const [fixed, ...stepShape] = spec.shape;
  const steps = length ?? fixed;
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
function startService(dir, prefixDir, clients, workers, httpProcesses) {
  return launchService([
    '--http-processes',
    String(httpProcesses),
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
    '--workers',
    String(workers),
    '--reload-interval-ms',
    '0',
  ]);
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/**
 * CPU seconds of the service's processes and this client while `run` runs:
 * http (the main process and any HTTP processes of --http-processes) and
 * workers (the model workers), each a list of pids.
 */
async function withCpu({ http: httpPids, workers }, run) {
  const pids = [...httpPids, ...workers];
  const before = pids.map(cpuSeconds);
  const self = process.cpuUsage();
  const measured = await run();
  const used = pids.map((pid, i) => cpuSeconds(pid) - before[i]);
  const client = process.cpuUsage(self);
  const sum = (list) => list.reduce((total, seconds) => total + seconds, 0);
  measured.cpu_s = {
    http_process: sum(used.slice(0, httpPids.length)), // with --http-processes N: all N and the primary
    main_process: used[0], // of those, the main process (with N >= 2: the primary, where the batchers are)
    worker: sum(used.slice(httpPids.length)), // every worker
    client: (client.user + client.system) / 1e6,
  };
  return measured;
}

const closeTo = (got, want, atol) =>
  Array.isArray(got) &&
  got.length === want.length &&
  got.every((v, i) => Math.abs(v - want[i]) <= atol);

/** The answers' tally in steps: right, wrong (checked within atol), and the first failure's status and text. */
function tally(atol) {
  const counts = { right: 0, wrong: 0, firstFailure: null };
  counts.check = (status, text, expect) => {
    if (status !== 200) {
      if (!counts.firstFailure) counts.firstFailure = `${status} ${text.slice(0, 200)}`;
      return false;
    }
    const answer = JSON.parse(text).predictions;
    // one output per step of the request: every one must be right
    const right =
      Array.isArray(answer) &&
      answer.length === expect.length &&
      expect.every((want, i) => closeTo(answer[i], want, atol));
    counts[right ? 'right' : 'wrong'] += expect.length;
    return true;
  };
  return counts;
}

function figures(counts, latencies, seconds, failed) {
  const sorted = Float64Array.from(latencies).sort();
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return {
    steps_per_s: counts.right / seconds,
    answered_right: counts.right,
    wrong: counts.wrong,
    failed,
    first_failure: counts.firstFailure,
    seconds,
    p50_ms: q(0.5),
    p99_ms: q(0.99),
  };
}

/**
 * autocannon on `port` for `duration` s, one connection per client, each
 * cycling through requestsFor(client): its requests, in order, each
 * {path, body() (a string, built when it is sent), expect (the outputs it
 * must get, one per step, checked within atol)}.
 */
async function autocannonLoad(port, clients, duration, requestsFor, atol) {
  const autocannon = require('autocannon');
  const counts = tally(atol);
  const latencies = [];
  let next = 0;
  const asRequests = (list) =>
    list.map(({ path: where, body, expect }) => ({
      method: 'POST',
      path: where,
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({ ...request, body: body() }),
      onResponse: (status, text) => counts.check(status, text, expect),
    }));
  const instance = autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: clients,
    duration,
    timeout: 60,
    // every connection gets its own list (its own sequence ids); this one
    // is only built by autocannon before setupClient replaces it
    requests: asRequests(requestsFor(0)),
    setupClient: (client) => client.setRequests(asRequests(requestsFor(next++))),
  });
  instance.on('response', (_client, status, _bytes, ms) => {
    if (status === 200) latencies.push(ms);
  });
  const result = await instance;
  const failed = result.errors + result.non2xx + result.timeouts;
  return figures(counts, latencies, result.duration, failed);
}

/**
 * The same load from a plain HTTP/1.1 client on net sockets: one
 * keep-alive connection per client, one request in flight on each, the
 * request's bytes built by string concatenation and the answer read by its
 * Content-Length. It does what autocannon does with less CPU per request
 * (autocannon copies each request's options object to rebuild it), which
 * matters when the client shares the service's cores: the side with more
 * requests would pay more for its client. A connection that closes with a
 * request in flight counts it failed and starts its list again.
 */
function rawLoad(port, clients, duration, requestsFor, atol) {
  const net = require('net');
  const counts = tally(atol);
  const latencies = [];
  let failed = 0;
  const started = performance.now();
  const deadline = started + duration * 1000;
  const connection = (list) =>
    new Promise((resolve) => {
      let k = 0;
      let sentAt = 0;
      let inFlight = false;
      let pending = Buffer.alloc(0);
      let socket;
      const send = () => {
        if (performance.now() >= deadline) {
          socket.end();
          return;
        }
        const { path: where, body } = list[k];
        const text = body();
        socket.write(
          `POST ${where} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
        );
        sentAt = performance.now();
        inFlight = true;
      };
      const onData = (chunk) => {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        const headEnd = pending.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const head = pending.toString('latin1', 0, headEnd);
        const length = Number((/\r\ncontent-length: *(\d+)/i.exec(head) || [])[1]);
        if (!Number.isInteger(length)) throw new Error(`an answer without Content-Length: ${head}`);
        if (pending.length < headEnd + 4 + length) return;
        const text = pending.toString('utf8', headEnd + 4, headEnd + 4 + length);
        pending = pending.subarray(headEnd + 4 + length);
        inFlight = false;
        const status = Number(head.slice(9, 12));
        if (counts.check(status, text, list[k].expect)) latencies.push(performance.now() - sentAt);
        else failed += 1;
        k = (k + 1) % list.length;
        send();
      };
      const open = () => {
        socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
        socket.on('connect', send);
        socket.on('data', onData);
        socket.on('error', () => {});
        socket.on('close', () => {
          if (!inFlight) return resolve();
          failed += 1; // the request in flight is lost: start this client's list again
          inFlight = false;
          pending = Buffer.alloc(0);
          k = 0;
          if (performance.now() < deadline) open();
          else resolve();
        });
      };
      open();
    });
  return Promise.all(Array.from({ length: clients }, (_, c) => connection(requestsFor(c)))).then(
    () => figures(counts, latencies, (performance.now() - started) / 1000, failed),
  );
}

/**
 * The stream side over WebSockets: one connection per client to
 * ws://127.0.0.1:port/v1/models/NAME:stream, cycling through
 * requestsFor(client) as rawLoad does, one message in flight on each; an
 * answer {"error", "status"} counts failed with its status. A connection that
 * closes with a step in flight counts it failed and starts its list again.
 */
function wsLoad(port, clients, duration, requestsFor, atol) {
  const WebSocket = require('ws');
  const counts = tally(atol);
  const latencies = [];
  let failed = 0;
  const started = performance.now();
  const deadline = started + duration * 1000;
  const connection = (list) =>
    new Promise((resolve) => {
      let k = 0;
      let sentAt = 0;
      let inFlight = false;
      let socket;
      const send = () => {
        if (performance.now() >= deadline) return socket.close(1000);
        socket.send(list[k].body());
        sentAt = performance.now();
        inFlight = true;
      };
      const open = () => {
        socket = new WebSocket(`ws://127.0.0.1:${port}${list[0].path}`, {
          perMessageDeflate: false,
        });
        socket.on('open', send);
        socket.on('message', (data) => {
          const text = data.toString('utf8');
          inFlight = false;
          const status = text.startsWith('{"error"') ? JSON.parse(text).status : 200;
          if (counts.check(status, text, list[k].expect))
            latencies.push(performance.now() - sentAt);
          else failed += 1;
          k = (k + 1) % list.length;
          send();
        });
        socket.on('error', () => {});
        socket.on('close', () => {
          if (!inFlight) return resolve();
          failed += 1;
          inFlight = false;
          k = 0;
          if (performance.now() < deadline) open();
          else resolve();
        });
      };
      open();
    });
  return Promise.all(Array.from({ length: clients }, (_, c) => connection(requestsFor(c)))).then(
    () => figures(counts, latencies, (performance.now() - started) / 1000, failed),
  );
}

/** Both sides on one service of `httpProcesses` HTTP processes: the run's report. */
async function runOnce(options, { inputs, want, steps }, prefixDir, httpProcesses) {
  const { dir, clients, duration, sequences, atol, lockstep, sides, client, chunk, workers } =
    options;
  const { transport } = options;
  let service;
  try {
    service = await startService(dir, prefixDir, clients, workers, httpProcesses);
    const { port, workerPids, httpPids } = service;
    const pids = { http: [service.child.pid, ...httpPids], workers: workerPids };
    const load = client === 'raw' ? rawLoad : autocannonLoad;
    // :predict on the growing prefix: client c feeds sequence c % count, from step c % steps
    const prefixRequests = (client) => {
      const s = client % sequences;
      return Array.from({ length: steps }, (_, k) => {
        const t = (k + (lockstep ? 0 : client)) % steps;
        const body = JSON.stringify({ instances: [inputs[s].slice(0, t + 1)] });
        return { path: '/v1/models/model_prefix:predict', body: () => body, expect: [want[s][t]] };
      });
    };
    const prefix = sides.includes('prefix')
      ? await withCpu(pids, () => load(port, clients, duration, prefixRequests, atol))
      : null;
    // :stream: the same sequences, one step a request, a new sequence id each time round
    const streamRequests = (c) => {
      const s = c % sequences;
      let round = 0;
      const starts = Array.from({ length: Math.ceil(steps / chunk) }, (_, k) => k * chunk);
      return starts.map((t) => {
        const end = Math.min(steps, t + chunk);
        // all but the sequence id is the same each time round
        const flags =
          (t === 0 ? ',"sequence_start":true' : '') + (end === steps ? ',"sequence_end":true' : '');
        const rest = `,"instances":${JSON.stringify(inputs[s].slice(t, end))}${flags}}`;
        return {
          path: '/v1/models/model:stream',
          expect: want[s].slice(t, end),
          body: () => {
            if (t === 0) round += 1;
            return `{"sequence_id":"c${c}-${round}"${rest}`;
          },
        };
      });
    };
    const streamLoad = transport === 'ws' ? wsLoad : load;
    const stream = sides.includes('stream')
      ? await withCpu(pids, () => streamLoad(port, clients, duration, streamRequests, atol))
      : null;
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
    if (stream) {
      const batches = metric('tfjs_bridge_sequence_batch_steps_count');
      stream.batches = batches;
      stream.steps_per_batch = metric('tfjs_bridge_sequence_batch_steps_sum') / batches;
      stream.worker_ms_per_batch =
        (1000 * metric('tfjs_bridge_sequence_batch_duration_seconds_sum')) / batches;
    }
    if (prefix) {
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
    }
    const report = {
      model: dir,
      clients,
      duration_s: duration,
      client,
      stream_transport:
        transport === 'ws' ? 'WebSocket, one step per message' : 'HTTP POST per step',
      stream_steps_per_request: chunk,
      workers,
      http_processes: httpProcesses,
      prefix_clients: lockstep ? 'in lockstep' : 'spread over the sequence',
      steps_per_sequence: steps,
      atol,
      stream,
      prefix,
      ratio: stream && prefix ? stream.steps_per_s / prefix.steps_per_s : null,
      load_average: os.loadavg(),
      cpus: os.cpus().length,
      node: process.versions.node,
      when: new Date().toISOString(),
    };
    return report;
  } finally {
    if (service) {
      const exited = new Promise((resolve) => service.child.once('exit', resolve));
      service.child.kill('SIGTERM');
      await exited;
    }
  }
}

main(async () => {
  const options = parse();
  const refs = await references(options.dir, options.sequences, options.steps);
  const prefixDir = freeTimeAxisCopy(options.dir);
  try {
    // --http-processes 1,2: one service after the other, in one run
    const reports = [];
    for (const n of options.httpProcesses) reports.push(await runOnce(options, refs, prefixDir, n));
    const out = reports.length === 1 ? reports[0] : { runs: reports };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } finally {
    fs.rmSync(prefixDir, { recursive: true, force: true });
  }
}, USAGE);
