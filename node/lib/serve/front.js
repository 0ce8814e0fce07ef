'use strict';
// serve --http-processes N, an HTTP process's half (hub.js is the
// primary's): the same fastify app (app.js) as the one-process service, on a
// port shared by the N processes (Node's cluster), with a stand-in for the
// catalog that hands each checked request to the primary, where the
// batchers, the sequence table and the model workers are. It loads no
// TensorFlow and starts no worker.
//
// Signals: the primary shuts the service down and tells this process to
// close (stop accepting, answer what it holds, exit 0); a signal sent here
// (a terminal's Ctrl-C reaches the whole process group) is only counted, and
// SIGUSR1 cannot open Node's inspector. If the primary goes away, so does this.
const { createMetrics } = require('./metrics');
const { buildApp } = require('./app');
const { coalesced, unpack, toWire, fromWire } = require('./ipc');

/** catalog.js's interface as app.js uses it, answered by the primary. */
class RemoteCatalog {
  constructor(ask) {
    this.ask = ask;
    this.models = new Map(); // name -> {name, current}: the versions the primary last said
  }

  setView(models) {
    this.models = new Map(models.map((m) => [m.name, m]));
  }

  get(name) {
    return this.models.get(name);
  }

  acquire(entry) {
    return entry.current; // the primary holds the version (hub.js)
  }

  release() {}

  async submit(entry, arrays, timeoutMs, generation) {
    const { name } = entry;
    const { version } = generation;
    const asked = { t: 'predict', name, version, arrays: arrays.map(toWire), timeoutMs };
    return (await this.ask(asked)).map(fromWire);
  }

  async step(entry, { id, start, end, body }) {
    const asked = { t: 'step', name: entry.name, sequence: id, start, end, body };
    const answer = await this.ask(asked);
    return { ...answer, output: fromWire(answer.output) };
  }
}

function runHttpProcess({ host, port, bodyLimit, timeoutMs }) {
  const metrics = createMetrics();
  const waiting = new Map(); // request id -> {resolve, reject}
  let nextId = 1;
  const send = coalesced((message) => process.send(message));
  const ask = (message) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      send({ ...message, id });
    });
  const catalog = new RemoteCatalog(ask);
  const state = { ready: false, closing: false };
  let app = null;
  let viewed;
  const firstView = new Promise((resolve) => (viewed = resolve));

  const receive = (message) => {
    switch (message && message.t) {
      case 'reply': {
        const waiter = waiting.get(message.id);
        waiting.delete(message.id);
        if (!waiter) return;
        if (!message.error) waiter.resolve(message.value);
        else waiter.reject(Object.assign(new Error(message.error.message), message.error));
        return;
      }
      case 'view':
        catalog.setView(message.models);
        // through the same queue as the requests: it must follow every one checked on the old view
        send({ t: 'ack', number: message.number });
        viewed();
        return;
      case 'metrics_json':
        metrics.registry
          .getMetricsAsJSON()
          .then((json) => process.send({ t: 'metrics_json', id: message.id, json }));
        return;
      case 'close':
        state.closing = true;
        (app ? app.close() : Promise.resolve()).then(() => process.exit(0));
        return;
      default:
    }
  };
  process.on('message', (message) => unpack(message, receive));
  process.on('disconnect', () => process.exit(state.closing ? 0 : 1));
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'])
    process.on(signal, () => metrics.signal(signal));

  process.send({ t: 'hello' });
  return firstView.then(async () => {
    app = buildApp({
      catalog,
      metrics: { ...metrics, text: () => ask({ t: 'metrics' }) },
      bodyLimit,
      timeoutMs,
      state,
    });
    try {
      await app.listen({ host, port });
    } catch (err) {
      process.send({ t: 'fatal', message: String(err.message).split('\n')[0] });
      process.exit(1);
    }
    state.ready = true;
    await new Promise(() => {}); // runs until the primary says close
  });
}

module.exports = { runHttpProcess, RemoteCatalog };
