'use strict';
// A small HTTP proxy in front of several service replicas (node/serve.js)
// that keeps each :stream sequence on one replica, where its state lives:
// POST /v1/models/NAME:stream goes to the replica that owns the step's
// X-Sequence-Id header on a consistent-hash ring (lib/serve/ring.js), so
// every step of a sequence reaches the same replica, and a replica added or
// removed moves only its own share of the sequences. Everything else goes to
// the replicas in turn. The id is read from the header, not the body, so the
// proxy streams bodies through untouched, as an ingress does
// (deploy/kubernetes/: ingress-nginx's upstream-hash-by on the same header).
// A :stream step without the header is refused (400). --mode round-robin
// sends :stream in turn too: the negative control of
// tests/test_serve_affinity.py, where sequences then land on replicas that
// never saw their start.
//
//   node node/scripts/stream-proxy.js --upstream http://127.0.0.1:8501 --upstream http://127.0.0.1:8502 [--port 8500]
const http = require('http');
const { main, parseCommandLine, UsageError } = require('../lib/runtime/cli');
const { HashRing } = require('../lib/serve/ring');
const { SEQUENCE_ID_HEADER } = require('../lib/serve/sequences');

const USAGE =
  'usage: stream-proxy.js --upstream http://HOST:PORT [--upstream ...] [--host 127.0.0.1] [--port 8500] ' +
  '[--mode hash|round-robin]  (routes :stream by its X-Sequence-Id header on a consistent-hash ring)';

function parse() {
  const { values } = parseCommandLine(
    {
      options: {
        upstream: { type: 'string', multiple: true },
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '8500' },
        mode: { type: 'string', default: 'hash' },
      },
    },
    USAGE,
  );
  if (!values.upstream) throw new UsageError(`--upstream is required (${USAGE})`);
  const upstreams = values.upstream.map((text) => {
    let url;
    try {
      url = new URL(text);
    } catch {
      url = null;
    }
    if (!url || url.protocol !== 'http:' || !url.port)
      throw new UsageError(`--upstream must be http://HOST:PORT, got '${text}'`);
    return { host: url.hostname, port: Number(url.port), name: `${url.hostname}:${url.port}` };
  });
  if (!['hash', 'round-robin'].includes(values.mode))
    throw new UsageError(`--mode must be hash or round-robin, got '${values.mode}'`);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port must be an integer from 0 to 65535, got '${values.port}'`);
  return { upstreams, host: values.host, port, mode: values.mode };
}

const STREAM = /^\/v1\/models\/[^/?]+:stream(\?|$)/;

function proxy({ upstreams, host, port, mode }) {
  const ring = new HashRing(upstreams.map((u) => u.name));
  const byName = new Map(upstreams.map((u) => [u.name, u]));
  const agent = new http.Agent({ keepAlive: true });
  let turn = 0;
  const next = () => upstreams[turn++ % upstreams.length];
  const refuse = (response, code, message) => {
    response.writeHead(code, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ error: message }));
  };

  const server = http.createServer((request, response) => {
    let upstream;
    if (request.method === 'POST' && STREAM.test(request.url) && mode === 'hash') {
      const id = request.headers[SEQUENCE_ID_HEADER];
      if (id === undefined) {
        request.resume();
        return refuse(response, 400, `a :stream step needs an X-Sequence-Id header here`);
      }
      upstream = byName.get(ring.nodeOf(id));
    } else {
      upstream = next();
    }
    const out = http.request(
      {
        host: upstream.host,
        port: upstream.port,
        method: request.method,
        path: request.url,
        headers: request.headers,
        agent,
      },
      (answer) => {
        response.writeHead(answer.statusCode, answer.headers);
        answer.pipe(response);
      },
    );
    out.on('error', (err) => {
      if (!response.headersSent)
        refuse(response, 502, `replica ${upstream.name}: ${String(err.message).split('\n')[0]}`);
      else response.destroy();
    });
    request.pipe(out);
    return undefined;
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      process.stdout.write(
        `listening on http://${host}:${server.address().port} (${mode}; replicas ${upstreams.map((u) => u.name).join(' ')})\n`,
      );
      const stop = () => {
        server.close(() => {
          agent.destroy();
          resolve();
        });
        server.closeIdleConnections();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  });
}

main(() => proxy(parse()), USAGE);
