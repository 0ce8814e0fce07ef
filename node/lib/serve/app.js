'use strict';
// The HTTP side of the service, on fastify:
//   POST /v1/models/NAME:predict          TF Serving's REST predict (rest.js), or .npy/.npz
//   POST /v1/models/NAME/versions/V:predict
//   POST /v1/models/NAME:stream           one step of a sequence (sequence_id, sequence_start,
//                                         sequence_end; sequences.js), answered from its state
//   GET  /v1/models/NAME:stream           the same steps over one WebSocket (@fastify/websocket):
//                                         each text message a :stream body, each answer (or
//                                         {"error", "status"}) a message, in order
//   GET  /v1/models/NAME                  status, as TF Serving answers it
//   GET  /v1/models/NAME/metadata         signature (inputs, outputs) and the path it runs on
//   GET  /healthz                         the process answers
//   GET  /readyz                          every model loaded and warm, and not shutting down
//   GET  /metrics                         Prometheus text (metrics.js)
// Every error is {"error": "one line"} with a 4xx/5xx status; a bad request
// never reaches a model.
const Fastify = require('fastify');
const websocket = require('@fastify/websocket');
const {
  RequestError,
  readJsonRequest,
  readBinaryRequest,
  writeResponse,
  sample,
  metadata,
  status,
} = require('./rest');
const { sequenceIdOf, SEQUENCE_ID_HEADER } = require('./sequences');

/**
 * A :stream step's sequence id: the body's sequence_id, or the
 * X-Sequence-Id header (what a proxy or an ingress can hash on without
 * reading the body: docs/serving.md); both given, they must agree.
 */
function sequenceIdFrom(inBody, header) {
  if (header === undefined) return inBody;
  if (inBody === undefined) return header;
  if (String(inBody) !== header)
    throw new RequestError(
      `sequence_id ${JSON.stringify(inBody)} and the ${SEQUENCE_ID_HEADER} header ${JSON.stringify(header)} differ`.slice(
        0,
        200,
      ),
    );
  return inBody;
}

// Why a request failed -> HTTP status. Queue full: 429; shutting down or no
// worker: 503; deadline: 504.
const STATUS_OF_KIND = { overloaded: 429, deadline: 504, unavailable: 503 };

// Messages one WebSocket may have unanswered (a client that sends without
// reading is closed with 1008 beyond it, rather than queued without bound).
const MAX_IN_FLIGHT = 4096;

const BINARY = { 'application/x-npy': 'npy', 'application/x-npz': 'npz', 'application/zip': 'npz' };

/**
 * catalog: catalog.js's (one process), or front.js's stand-in in an HTTP
 * process of --http-processes N, which hands checked requests to the primary.
 */
function buildApp({ catalog, metrics, bodyLimit, timeoutMs, state }) {
  const app = Fastify({ bodyLimit, logger: false, return503OnClosing: true });
  // a message larger than a body may be is refused by closing with 1009 (ws's own);
  // at shutdown each connection is closed with 1001, and dropped 2 s later if
  // its client does not answer the close (ws itself would wait 30 s)
  app.register(websocket, {
    options: { maxPayload: bodyLimit },
    preClose(done) {
      for (const client of this.websocketServer.clients) {
        client.close(1001, 'shutting down');
        setTimeout(() => client.terminate(), 2000).unref();
      }
      this.websocketServer.close(() => {});
      done();
    },
  });

  app.removeContentTypeParser('text/plain');
  // `curl -d` labels its body as a form; TF Serving reads it as JSON, as do we.
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );
  for (const type of Object.keys(BINARY)) {
    app.addContentTypeParser(type, { parseAs: 'buffer' }, (request, body, done) =>
      done(null, body),
    );
  }

  // Metrics label only the models served: a label per name asked for would grow without bound.
  const label = (asked) => (catalog.get(asked) ? asked : 'unknown');

  // fastify's own refusals (bad JSON, body too large, unknown content type)
  // as one-line JSON errors.
  app.setErrorHandler((err, request, reply) => {
    const code = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    const message = String(err.message || err).split('\n')[0];
    const { name: named, target = '' } = request.params || {};
    const name = label(named || target.split(':')[0]);
    metrics.failed(name, code >= 500 ? 'internal' : 'bad_request');
    metrics.answered(name, code, null);
    reply.code(code).send({ error: message });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: `no route ${request.method} ${request.url}` });
  });

  const model = (name) => {
    const entry = catalog.get(name);
    if (!entry)
      throw new RequestError(
        `no model named ${name} (serving: ${[...catalog.models.keys()].join(', ')})`,
        404,
        'not_found',
      );
    return entry;
  };

  /** A failed request counted, as {code, error: one line}. */
  const failure = (asked, err) => {
    const name = label(asked);
    const kind = err.kind || 'model_error';
    const code = err.status || STATUS_OF_KIND[kind] || 500;
    metrics.failed(name, kind);
    metrics.answered(name, code, null);
    return { code, error: String(err.message).split('\n')[0] };
  };
  const fail = (reply, asked, err) => {
    const { code, error } = failure(asked, err);
    return reply.code(code).send({ error });
  };

  const predict = async (request, reply, name, version) => {
    const started = performance.now();
    let entry;
    try {
      entry = model(name);
      if (version !== undefined && version !== String(entry.current.version))
        throw new RequestError(
          `model ${name} has no version ${version} (serving version ${entry.current.version})`,
          404,
          'not_found',
        );
      if (state.closing) throw new RequestError('shutting down', 503, 'unavailable');
    } catch (err) {
      return fail(reply, name, err);
    }
    // Checked against one version and run on it, even if a reload comes between.
    const generation = catalog.acquire(entry);
    try {
      let parsed;
      let tensors;
      try {
        const type = String(request.headers['content-type'] || '')
          .split(';')[0]
          .trim();
        parsed = BINARY[type]
          ? readBinaryRequest(request.body, BINARY[type], generation.signature, bodyLimit)
          : readJsonRequest(request.body, generation.signature);
        tensors = await catalog.submit(entry, parsed.arrays, timeoutMs, generation);
      } catch (err) {
        return fail(reply, name, err);
      }
      const outputs = Object.fromEntries(tensors.map((t, i) => [generation.outputNames[i], t]));
      const { contentType, payload } = writeResponse(parsed.format, outputs);
      metrics.answered(name, 200, (performance.now() - started) / 1000, generation.runtime);
      return reply.code(200).header('content-type', contentType).send(payload);
    } finally {
      catalog.release(generation);
    }
  };

  // One step of a sequence, or a chunk of T: {"sequence_id", "sequence_start"?,
  // "sequence_end"?, "instances": [step, ...]} (or "inputs"), answered
  // {"sequence_id", "sequence_step", "predictions": [output, ...]} (or
  // "outputs"), one output per step, from the sequence's own state. Both
  // transports (a POST per step, or a WebSocket message) come here.
  const streamAnswer = async (name, body, header) => {
    const entry = model(name);
    if (state.closing) throw new RequestError('shutting down', 503, 'unavailable');
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new RequestError('the body must be a JSON object');
    const {
      sequence_id: inBody,
      sequence_start: start = false,
      sequence_end: end = false,
      ...rest
    } = body;
    const given = sequenceIdFrom(inBody, header);
    const id = sequenceIdOf(given);
    if (typeof start !== 'boolean' || typeof end !== 'boolean')
      throw new RequestError('sequence_start and sequence_end must be true or false');
    const answer = await catalog.step(entry, { id, start, end, body: rest });
    const key = answer.format === 'columnar' ? 'outputs' : 'predictions';
    metrics.answered(name, 200, null);
    return {
      sequence_id: given,
      sequence_step: answer.step,
      [key]: Array.from({ length: answer.output.shape[0] }, (_, t) => sample(answer.output, t)),
    };
  };

  const streamStep = async (request, reply, name) => {
    try {
      const type = String(request.headers['content-type'] || '')
        .split(';')[0]
        .trim();
      if (BINARY[type])
        throw new RequestError(`a :stream step is a JSON body, not ${type}`, 415, 'bad_request');
      const answer = await streamAnswer(name, request.body, request.headers[SEQUENCE_ID_HEADER]);
      return reply.code(200).send(answer);
    } catch (err) {
      return fail(reply, name, err);
    }
  };

  // The WebSocket form: each text message one :stream body, answered by one
  // message (the same JSON, or {"error", "status"} with the status the POST
  // form would have), in the order the messages came; the connection stays
  // open after an error. Steps of different sequences run side by side (and
  // batch with everyone's); a sequence's next step waits for its previous one.
  const streamSocket = (socket, name) => {
    const answers = []; // one slot per message, in the order they came: {text} once answered
    const waiting = new Map(); // sequence id -> its steps waiting while one of it runs
    const flush = () => {
      while (answers.length && answers[0].text !== undefined) {
        const { text } = answers.shift();
        if (socket.readyState === 1) socket.send(text);
      }
    };
    const finish = (slot, text) => {
      slot.text = text;
      flush();
    };
    const errorText = (err) => {
      const { code, error } = failure(name, err);
      return JSON.stringify({ error, status: code });
    };
    const run = (slot, body, key) =>
      streamAnswer(name, body, undefined)
        .then(
          (answer) => finish(slot, JSON.stringify(answer)),
          (err) => finish(slot, errorText(err)),
        )
        .then(() => {
          const next = waiting.get(key);
          if (next.length) run(...next.shift(), key);
          else waiting.delete(key);
        });
    socket.on('message', (data, isBinary) => {
      if (answers.length >= MAX_IN_FLIGHT)
        return socket.close(1008, `more than ${MAX_IN_FLIGHT} messages unanswered`);
      const slot = {};
      answers.push(slot);
      if (isBinary)
        return finish(
          slot,
          errorText(new RequestError('a :stream step is a JSON text message, not binary', 415)),
        );
      let body;
      try {
        body = JSON.parse(data.toString('utf8'));
      } catch (err) {
        return finish(
          slot,
          errorText(new RequestError(`the message is not JSON: ${err.message}`.slice(0, 200))),
        );
      }
      const id = body !== null && typeof body === 'object' ? body.sequence_id : undefined;
      // 7 and "7" name one sequence; any other id is checked (and refused) by streamAnswer
      const key = typeof id === 'string' || typeof id === 'number' ? String(id) : id;
      if (waiting.has(key)) return waiting.get(key).push([slot, body]);
      waiting.set(key, []);
      return run(slot, body, key);
    });
  };

  // NAME:predict is one path segment: read the verb from it.
  const verbOf = (target, verbs = ['predict', 'stream']) => {
    const at = target.lastIndexOf(':');
    const [name, verb] = at < 0 ? [target, ''] : [target.slice(0, at), target.slice(at + 1)];
    if (!verbs.includes(verb))
      throw new RequestError(
        `unsupported verb ':${verb}' (this service answers ${verbs.map((v) => `:${v}`).join(' and ')}; classify and regress are TF Serving's for Estimators)`,
        404,
        'not_found',
      );
    return { name, verb };
  };

  app.post('/v1/models/:target', async (request, reply) => {
    let target;
    try {
      target = verbOf(request.params.target);
    } catch (err) {
      return fail(reply, request.params.target, err);
    }
    if (target.verb === 'stream') return streamStep(request, reply, target.name);
    return predict(request, reply, target.name);
  });
  app.post('/v1/models/:name/versions/:target', async (request, reply) => {
    let version;
    try {
      // a sequence runs on the version it started on: :stream takes no version
      ({ name: version } = verbOf(request.params.target, ['predict']));
    } catch (err) {
      return fail(reply, request.params.name, err);
    }
    return predict(request, reply, request.params.name, version);
  });

  const describe = (handler) => async (request, reply) => {
    try {
      return handler(model(request.params.name));
    } catch (err) {
      return reply.code(err.status || 500).send({ error: err.message });
    }
  };
  // in a plugin registered after @fastify/websocket, so that its onRoute hook sees the route
  app.register(async (scope) =>
    scope.route({
      method: 'GET',
      url: '/v1/models/:name',
      handler: describe((entry) => status(entry.current)),
      // GET /v1/models/NAME:stream upgraded to a WebSocket
      wsHandler: (socket, request) => {
        let target;
        try {
          target = verbOf(request.params.name, ['stream']);
          model(target.name);
        } catch (err) {
          const { code, error } = failure(request.params.name, err);
          socket.send(JSON.stringify({ error, status: code }));
          return socket.close(4000 + code, error.slice(0, 100));
        }
        return streamSocket(socket, target.name);
      },
    }),
  );
  app.get(
    '/v1/models/:name/metadata',
    describe((entry) => metadata(entry.name, entry.current)),
  );

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    const ready = state.ready && !state.closing;
    const models = Object.fromEntries(
      [...catalog.models.values()].map((e) => [
        e.name,
        { version: e.current.version, path: e.current.runtime },
      ]),
    );
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? 'ready' : state.closing ? 'shutting down' : 'loading', models });
  });
  app.get('/metrics', async (request, reply) =>
    reply.header('content-type', metrics.contentType).send(await metrics.text()),
  );
  return app;
}

module.exports = { buildApp };
