'use strict';
// Memory per live sequence of serve's sequence batcher (:stream): one
// service (node/serve.js, started here on 127.0.0.1, one worker) with a
// model folder; after one sequence started and ended (the streams and the
// worker's table of states are then in place), sequences are started, one
// step each and never ended, up to each of --live's counts in turn. At each
// count: the resident memory (VmRSS) of the HTTP process and of the worker,
// and the HTTP process's V8 heap in use (its /metrics), each after --settle-ms
// of quiet. Per sequence: the growth from the first count, divided by the
// sequences added. The worker's table holds --max-sequences rows, zeroed,
// allocated at its first sequence, each row every recurrent layer's state,
// printed as table bytes per row.
//
//   node node/scripts/bench-stream-memory.js --model shared_models/gru [--live 0,1000,10000]
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { main, parseCommandLine, UsageError } = require('../lib/runtime/cli');
const { launchService } = require('../lib/serve/launch');

const USAGE =
  'usage: bench-stream-memory.js --model DIR [--live 0,1000,10000] [--clients 32] ' +
  '[--settle-ms 2000]  (memory of serve with that many live :stream sequences; prints JSON)';

function parse() {
  const { values } = parseCommandLine(
    {
      options: {
        model: { type: 'string' },
        live: { type: 'string', default: '0,1000,10000' },
        clients: { type: 'string', default: '32' },
        'settle-ms': { type: 'string', default: '2000' },
      },
    },
    USAGE,
  );
  if (!values.model) throw new UsageError(`--model is required (${USAGE})`);
  const dir = path.resolve(values.model);
  if (!fs.existsSync(path.join(dir, 'manifest.json')))
    throw new UsageError(`--model ${values.model}: no manifest.json there`);
  const live = values.live.split(',').map(Number);
  if (!live.every((n, i) => Number.isInteger(n) && n >= 0 && (i === 0 || n > live[i - 1])))
    throw new UsageError(`--live takes increasing counts, e.g. 0,1000,10000, got '${values.live}'`);
  const clients = Number(values.clients);
  const settleMs = Number(values['settle-ms']);
  if (!(Number.isInteger(clients) && clients > 0))
    throw new UsageError(`--clients must be a positive integer, got '${values.clients}'`);
  if (!(Number.isInteger(settleMs) && settleMs >= 0))
    throw new UsageError(
      `--settle-ms must be a non-negative integer, got '${values['settle-ms']}'`,
    );
  return { dir, live, clients, settleMs };
}

/** serve.js with the model as "model", room for `maxSequences`; resolves to {port, child, pids}. */
async function startService(dir, maxSequences) {
  const started = await launchService([
    '--model',
    `model=${dir}`,
    '--format',
    'layers',
    '--workers',
    '1',
    '--max-sequences',
    String(maxSequences),
    '--stream-idle-ms',
    String(3600 * 1000), // none expires while measured
    '--reload-interval-ms',
    '0',
  ]);
  return { ...started, workerPid: started.workerPids[0] };
}

/** VmRSS of a process, in bytes. */
function residentBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return 1024 * Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]);
}

function request(agent, port, method, where, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: where,
        agent,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sequence ids from..to-1 started (one step each, never ended), `clients` requests at a time. */
async function startSequences(agent, port, from, to, clients, step) {
  let next = from;
  const one = async () => {
    while (next < to) {
      const id = next++;
      const body = `{"sequence_id":"m${id}","sequence_start":true,"instances":[${step}]}`;
      const { status, text } = await request(agent, port, 'POST', '/v1/models/model:stream', body);
      if (status !== 200) throw new Error(`sequence m${id}: ${status} ${text.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: clients }, one));
}

/** The table's bytes per row: every recurrent layer's state, float32, from the model's layers. */
async function tableRowBytes(dir) {
  const { tf } = require('../lib/runtime/tfnode');
  const { loadModel } = require('../lib/runtime/models');
  const { openStreams } = require('../lib/layers/stream');
  const runner = await loadModel(tf, dir, 'layers');
  const streams = openStreams(tf, runner.model, { batch: 1 });
  const state = streams.getState();
  const floats = state.flat().reduce((sum, t) => sum + t.size, 0);
  tf.dispose(state);
  streams.dispose();
  runner.dispose();
  return 4 * floats;
}

main(async () => {
  const { dir, live, clients, settleMs } = parse();
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const [spec] = manifest.signature.inputs;
  if (spec.kind === 'tokens') throw new UsageError('token-id models are not benched here yet');
  const size = spec.shape.slice(1).reduce((a, b) => a * b, 1);
  const step = JSON.stringify(new Array(size).fill(((spec.low ?? 0) + (spec.high ?? 1)) / 2));
  const rowBytes = await tableRowBytes(dir);
  const most = live[live.length - 1];
  const service = await startService(dir, Math.max(1, most));
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  try {
    const { port, child, workerPid } = service;
    // the streams and the table in place: one sequence started and ended
    await startSequences(agent, port, -1, 0, 1, step);
    const ended = `{"sequence_id":"m-1","sequence_end":true,"instances":[${step}]}`;
    await request(agent, port, 'POST', '/v1/models/model:stream', ended);
    const heapUsed = async () => {
      const { text } = await request(agent, port, 'GET', '/metrics', undefined);
      const line = text
        .split('\n')
        .find((l) => l.startsWith('tfjs_bridge_nodejs_heap_size_used_bytes'));
      return line ? Number(line.split(' ').pop()) : null;
    };
    const levels = [];
    let started = 0;
    for (const count of live) {
      await startSequences(agent, port, started, count, clients, step);
      started = count;
      await new Promise((resolve) => setTimeout(resolve, settleMs));
      levels.push({
        live: count,
        http_rss_bytes: residentBytes(child.pid),
        worker_rss_bytes: residentBytes(workerPid),
        http_heap_used_bytes: await heapUsed(),
      });
    }
    const [first] = levels;
    const perSequence = (key, level) =>
      level.live > first.live ? (level[key] - first[key]) / (level.live - first.live) : null;
    for (const level of levels) {
      level.per_sequence_bytes = {
        http_rss: perSequence('http_rss_bytes', level),
        worker_rss: perSequence('worker_rss_bytes', level),
        http_heap_used: perSequence('http_heap_used_bytes', level),
      };
    }
    const report = {
      model: dir,
      table_bytes_per_row: rowBytes,
      table_rows: Math.max(1, most),
      levels,
      load_average: os.loadavg(),
      node: process.versions.node,
      when: new Date().toISOString(),
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    agent.destroy();
    const exited = new Promise((resolve) => service.child.once('exit', resolve));
    service.child.kill('SIGTERM');
    await exited;
  }
}, USAGE);
