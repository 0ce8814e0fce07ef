'use strict';
// Load an HTTP endpoint with autocannon and check every answer.
//
//   node node/scripts/load.js --url http://127.0.0.1:8501/v1/models/gru:predict \
//     --body-file bodies.json --expected-file expected.json --connections 64 --duration 10
//
// --body-file holds a JSON list of request bodies (strings), POSTed in turn by
// every connection (each connection starts at another one, so that concurrent
// requests differ); --expected-file a parallel list of the exact response
// body each should get. A 2xx answer whose body differs is counted as wrong
// (first_wrong shows one); non-2xx answers, connection errors and timeouts are
// counted apart. Latencies are every 2xx answer's, in ms, unrounded.
//
// Prints one JSON line on stdout: requests, requests_per_s, p50_ms, p90_ms,
// p99_ms, max_ms, errors, non_2xx, timeouts, wrong, first_wrong (and more).
// Used by `tfjs-bridge bench --serve` (py/tfjs_bridge/bench/service_load.py).
const fs = require('fs');
const { main, UsageError, parseCommandLine } = require('../lib/runtime/cli');

const USAGE =
  'usage: load.js --url URL --body-file BODIES.json [--expected-file EXPECTED.json] ' +
  '--connections C --duration S [--content-type application/json] [--timeout S]';

const SHOWN = 400; // characters of a wrong body kept in first_wrong

/** --name as a number: a positive integer, or any number > 0. */
function number(args, name, integer) {
  if (args[name] === undefined) throw new UsageError(`--${name} is required (${USAGE})`);
  const value = Number(args[name]);
  const ok = Number.isFinite(value) && value > 0 && (!integer || Number.isInteger(value));
  if (!ok) {
    const what = integer ? 'a positive integer' : 'a number > 0';
    throw new UsageError(`--${name} must be ${what}, got '${args[name]}'`);
  }
  return value;
}

/** A JSON list of strings from `file`, checked; `what` names it in errors. */
function readList(file, what) {
  let list;
  try {
    list = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(
      `${what} ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`,
    );
  }
  if (!Array.isArray(list) || list.length === 0 || !list.every((b) => typeof b === 'string'))
    throw new UsageError(`${what} ${file}: expected a non-empty JSON list of strings`);
  return list;
}

function parse() {
  const args = parseCommandLine(
    {
      options: {
        url: { type: 'string' },
        'body-file': { type: 'string' },
        'expected-file': { type: 'string' },
        connections: { type: 'string' },
        duration: { type: 'string' },
        'content-type': { type: 'string', default: 'application/json' },
        timeout: { type: 'string', default: '10' },
      },
    },
    USAGE,
  ).values;
  if (!args.url || !args['body-file']) throw new UsageError(USAGE);
  let url;
  try {
    url = new URL(args.url);
  } catch {
    throw new UsageError(`--url: not a URL: '${args.url}'`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`--url: expected http:// or https://, got '${args.url}'`);
  const bodies = readList(args['body-file'], '--body-file');
  const expected = args['expected-file']
    ? readList(args['expected-file'], '--expected-file')
    : null;
  if (expected && expected.length !== bodies.length)
    throw new UsageError(
      `--expected-file holds ${expected.length} bodies, --body-file ${bodies.length}: one each`,
    );
  return {
    url: args.url,
    bodies,
    expected,
    contentType: args['content-type'],
    connections: number(args, 'connections', true),
    duration: number(args, 'duration', false),
    timeout: number(args, 'timeout', false),
  };
}

/** The q-quantile (0..1) of sorted values, nearest rank; null when empty. */
function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function clip(text) {
  return text.length > SHOWN ? `${text.slice(0, SHOWN)}…` : text;
}

async function run() {
  const opts = parse();
  const autocannon = require('autocannon');
  const check = { checked: 0, wrong: 0, firstWrong: null };
  const requests = opts.bodies.map((body, i) => ({
    method: 'POST',
    body,
    headers: { 'content-type': opts.contentType },
    onResponse: (status, text) => {
      if (!opts.expected || status < 200 || status > 299) return;
      check.checked += 1;
      if (text === opts.expected[i]) return;
      check.wrong += 1;
      if (!check.firstWrong)
        check.firstWrong = { index: i, status, expected: clip(opts.expected[i]), got: clip(text) };
    },
  }));
  let nextStart = 0;
  const latencies = [];
  const instance = autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.duration,
    timeout: opts.timeout,
    requests,
    // Each connection starts at another body, so concurrent requests differ.
    setupClient: (client) => {
      const start = nextStart++ % requests.length;
      if (start) client.setRequests([...requests.slice(start), ...requests.slice(0, start)]);
    },
  });
  instance.on('response', (_client, status, _bytes, ms) => {
    if (status >= 200 && status <= 299) latencies.push(ms);
  });
  const result = await instance;
  const sorted = Float64Array.from(latencies).sort();
  const requestsDone = result.requests.total;
  const line = {
    url: opts.url,
    connections: opts.connections,
    duration_s: result.duration,
    requests: requestsDone,
    requests_per_s: result.duration > 0 ? requestsDone / result.duration : 0,
    ok_2xx: latencies.length,
    p50_ms: quantile(sorted, 0.5),
    p90_ms: quantile(sorted, 0.9),
    p99_ms: quantile(sorted, 0.99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    mean_ms: sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null,
    errors: result.errors,
    non_2xx: result.non2xx,
    timeouts: result.timeouts,
    status_codes: Object.fromEntries(
      Object.entries(result.statusCodeStats).map(([code, s]) => [code, Number(s.count)]),
    ),
    checked: opts.expected ? check.checked : null,
    wrong: opts.expected ? check.wrong : null,
    first_wrong: check.firstWrong,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

main(run, USAGE);
