'use strict';
// serve's :predict under load at several --http-processes counts, side by
// side in one run: for each count (--rounds times, counts alternating), one
// service (node/serve.js) on 127.0.0.1 and autocannon (node/scripts/load.js,
// in its own process, as `tfjs-bridge bench --serve` runs it) at
// --connections for --duration s, single-sample requests of 8 seeded inputs
// within the model's domain. Each answer is checked against the exact body
// the same service gives to that request alone; wrong, failed and non-2xx
// answers are counted. The CPU seconds of the service's HTTP side (the main
// process and its HTTP processes) and of its model workers are recorded.
//
//   node node/scripts/bench-http-processes.js --model shared_models/gru [--http-processes 1,2] [--connections 64] [--duration 20] [--rounds 1]
const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { main, parseCommandLine, UsageError } = require('../lib/runtime/cli');
const { launchService } = require('../lib/serve/launch');

const USAGE =
  'usage: bench-http-processes.js --model DIR [--http-processes 1,2] [--connections 64] ' +
  '[--duration 20] [--rounds 1] [--workers 1]  (serve :predict requests/s per --http-processes count; prints JSON)';

const LOAD = path.join(__dirname, 'load.js');
const SAMPLES = 8;

function parse() {
  const { values } = parseCommandLine(
    {
      options: {
        model: { type: 'string' },
        'http-processes': { type: 'string', default: '1,2' },
        connections: { type: 'string', default: '64' },
        duration: { type: 'string', default: '20' },
        rounds: { type: 'string', default: '1' },
        workers: { type: 'string', default: '1' },
      },
    },
    USAGE,
  );
  if (!values.model) throw new UsageError(`--model is required (${USAGE})`);
  const dir = path.resolve(values.model);
  if (!fs.existsSync(path.join(dir, 'manifest.json')))
    throw new UsageError(`--model ${values.model}: no manifest.json there`);
  const positive = (name, text = values[name]) => {
    if (!/^[1-9]\d*$/.test(text))
      throw new UsageError(`--${name} must be a positive integer, got '${values[name]}'`);
    return Number(text);
  };
  return {
    dir,
    counts: values['http-processes'].split(',').map((n) => positive('http-processes', n)),
    connections: positive('connections'),
    duration: positive('duration'),
    rounds: positive('rounds'),
    workers: positive('workers'),
  };
}

/** SAMPLES request bodies of one sample each, seeded, within the input's domain. */
function bodies(dir) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const specs = manifest.signature.inputs;
  if (specs.length !== 1) throw new UsageError(`--model: ${specs.length} inputs; one is benched`);
  const [spec] = specs;
  let state = 7;
  const rand = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const low = spec.low ?? 0;
  const high = spec.high ?? 1;
  const value = () =>
    spec.kind === 'tokens' ? low + Math.floor(rand() * (high - low)) : low + rand() * (high - low);
  const fill = (shape) =>
    shape.length ? Array.from({ length: shape[0] ?? 1 }, () => fill(shape.slice(1))) : value();
  return Array.from({ length: SAMPLES }, () => JSON.stringify({ instances: [fill(spec.shape)] }));
}

function post(port, where, body) {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, path: where, method: 'POST' },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => (text += chunk));
        response.on('end', () =>
          response.statusCode === 200
            ? resolve(text)
            : reject(new Error(`${response.statusCode} ${text}`)),
        );
      },
    );
    request.on('error', reject);
    request.setHeader('content-type', 'application/json');
    request.end(body);
  });
}

function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function runLoad(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LOAD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load.js: ${err.trim()}`)),
    );
  });
}

async function once(options, texts, count, folder) {
  const service = await launchService([
    '--model',
    `model=${options.dir}`,
    '--http-processes',
    String(count),
    '--workers',
    String(options.workers),
    '--reload-interval-ms',
    '0',
  ]);
  try {
    const where = '/v1/models/model:predict';
    const expected = [];
    for (const text of texts) expected.push(await post(service.port, where, text));
    const bodyFile = path.join(folder, 'bodies.json');
    const expectedFile = path.join(folder, 'expected.json');
    fs.writeFileSync(bodyFile, JSON.stringify(texts));
    fs.writeFileSync(expectedFile, JSON.stringify(expected));
    const httpPids = [service.child.pid, ...service.httpPids];
    const before = [...httpPids, ...service.workerPids].map(cpuSeconds);
    const result = await runLoad([
      '--url',
      `http://127.0.0.1:${service.port}${where}`,
      '--body-file',
      bodyFile,
      '--expected-file',
      expectedFile,
      '--connections',
      String(options.connections),
      '--duration',
      String(options.duration),
    ]);
    const used = [...httpPids, ...service.workerPids].map((pid, i) => cpuSeconds(pid) - before[i]);
    const sum = (list) => list.reduce((a, b) => a + b, 0);
    return {
      http_processes: count,
      path: (service.said.match(/runs on (\S+)/) || [])[1],
      requests_per_s: result.requests_per_s,
      p50_ms: result.p50_ms,
      p99_ms: result.p99_ms,
      requests: result.requests,
      wrong: result.wrong,
      failed: result.errors + result.non_2xx + result.timeouts,
      cpu_s: {
        http: sum(used.slice(0, httpPids.length)),
        workers: sum(used.slice(httpPids.length)),
      },
      load_average: os.loadavg(),
    };
  } finally {
    const exited = new Promise((resolve) => service.child.once('exit', resolve));
    service.child.kill('SIGTERM');
    await exited;
  }
}

main(async () => {
  const options = parse();
  const texts = bodies(options.dir);
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-http-processes-'));
  try {
    const runs = [];
    for (let round = 0; round < options.rounds; round++)
      for (const count of options.counts) runs.push(await once(options, texts, count, folder));
    const report = {
      model: options.dir,
      connections: options.connections,
      duration_s: options.duration,
      workers: options.workers,
      runs,
      cpus: os.cpus().length,
      node: process.versions.node,
      when: new Date().toISOString(),
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
  }
}, USAGE);
