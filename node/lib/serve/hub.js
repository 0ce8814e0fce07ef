'use strict';
// serve --http-processes N (N >= 2), the primary's half: N HTTP processes
// (Node's cluster, front.js) accept connections on one port, and this
// process stays the one owner of what must be one: the model worker pool,
// each model's batcher, the :stream sequence table (so a sequence's steps
// may arrive on any connection of any HTTP process), hot reload and signals.
// An HTTP process parses and checks a request (fastify, rest.js) and hands
// the checked arrays here over the cluster's IPC channel (ipc.js: JSON,
// arrays as their bytes, messages coalesced per turn); they are batched as
// if they had come in here, and the answer goes back the same way.
//
// Versions: an HTTP process checks a request against the version it last
// heard of. After a reload the old version is held until every HTTP process
// has acknowledged the new one; the channel keeps each process's messages in
// order, so every request checked against the old version has arrived (and
// holds it) by then. A request is still checked against one version and
// runs on it.
//
// /metrics: each HTTP process counts its requests; this process counts
// batches, sequences and workers. Whoever is asked gathers every process's
// registry here and prom-client's AggregatorRegistry.aggregate sums them
// (its default aggregator; the few it marks otherwise, such as the start
// time, as it says), so the page is one coherent service.
const cluster = require('cluster');
const { AggregatorRegistry } = require('prom-client');
const { coalesced, unpack, toWire, fromWire } = require('./ipc');

const METRICS_WAIT_MS = 5000;

/** An error as it crosses to the HTTP process: its one line, status and kind. */
const wireError = (err) => ({
  message: String((err && err.message) || err).split('\n')[0],
  status: err && err.status,
  kind: err && err.kind,
});

class Hub {
  /** count HTTP processes for `catalog` (catalog.js), `metrics` (metrics.js), `log` a line. */
  constructor({ catalog, metrics, count, log }) {
    Object.assign(this, { catalog, metrics, count, log });
    this.closing = false;
    this.viewNumber = 0;
    this.held = new Map(); // "name@version" -> a version an HTTP process may still ask for
    this.holds = []; // [{generation, key, waiting: Set of cluster worker ids, number}]
    this.gathers = new Map(); // metrics gathering id -> {json: [], waiting: Set, done}
    this.nextGather = 1;
    this.tablePerProcess = process.env.TFJS_BRIDGE_TEST_TABLE_PER_PROCESS === '1';
    for (const entry of catalog.models.values()) this.publish(entry.name, entry.current);
  }

  /** Forks the HTTP processes; resolves to {port, pids} once every one listens. */
  start() {
    cluster.on('message', (worker, message) => unpack(message, (one) => this.receive(worker, one)));
    cluster.on('exit', (worker, code, signal) => this.exited(worker, code, signal));
    return new Promise((resolve, reject) => {
      let listening = 0;
      let port = null;
      this.starting = { reject };
      cluster.on('listening', (worker, address) => {
        port = address.port;
        listening += 1;
        if (this.starting && listening === this.count) {
          this.starting = null;
          resolve({ port, pids: this.pids() });
        }
      });
      for (let i = 0; i < this.count; i++) cluster.fork();
    });
  }

  pids() {
    return Object.values(cluster.workers).map((w) => w.process.pid);
  }

  publish(name, generation) {
    this.held.set(`${name}@${generation.version}`, generation);
  }

  /** catalog.js's `switched`: tell every HTTP process, hold `old` until each has heard. */
  switched(entry, old) {
    this.publish(entry.name, entry.current);
    this.viewNumber += 1;
    const workers = Object.values(cluster.workers);
    old.pending += 1;
    this.holds.push({
      generation: old,
      key: `${entry.name}@${old.version}`,
      waiting: new Set(workers.map((w) => w.id)),
      number: this.viewNumber,
    });
    for (const worker of workers) this.sendView(worker);
    this.settleHolds();
  }

  sendView(worker) {
    worker.send({ t: 'view', number: this.viewNumber, models: this.catalog.view() });
  }

  settleHolds(id = null, number = Infinity) {
    this.holds = this.holds.filter((hold) => {
      if (id !== null && hold.number <= number) hold.waiting.delete(id);
      if (hold.waiting.size) return true;
      this.held.delete(hold.key);
      this.catalog.release(hold.generation);
      return false;
    });
  }

  /** A worker's send, coalesced per turn (ipc.js). */
  senderOf(worker) {
    if (!worker.coalesced)
      worker.coalesced = coalesced((message) => worker.isConnected() && worker.send(message));
    return worker.coalesced;
  }

  receive(worker, message) {
    if (!message || typeof message.t !== 'string') return;
    const send = this.senderOf(worker);
    const reply = (promise) =>
      promise.then(
        (value) => send({ t: 'reply', id: message.id, value }),
        (err) => send({ t: 'reply', id: message.id, error: wireError(err) }),
      );
    switch (message.t) {
      case 'hello':
        return this.sendView(worker);
      case 'ack':
        return this.settleHolds(worker.id, message.number);
      case 'predict':
        return reply(this.predict(message));
      case 'step':
        // the negative control of tests/test_serve_http_processes.py: a table
        // per HTTP process (ids namespaced by it), the design this one avoids
        if (this.tablePerProcess) message.sequence = `${worker.id}/${message.sequence}`;
        return reply(this.step(message));
      case 'metrics':
        return reply(this.metricsText());
      case 'metrics_json':
        return this.gathered(worker.id, message);
      case 'fatal':
        if (this.starting) this.starting.reject(new Error(message.message));
        this.starting = null;
        return undefined;
      default:
        return undefined;
    }
  }

  async predict({ name, version, arrays, timeoutMs }) {
    const entry = this.catalog.get(name);
    const generation = this.held.get(`${name}@${version}`);
    if (!entry || !generation)
      throw Object.assign(new Error(`model ${name} version ${version} is gone: retry`), {
        kind: 'unavailable',
      });
    generation.pending += 1; // released once answered, as app.js does in one process
    try {
      const outputs = await this.catalog.submit(entry, arrays.map(fromWire), timeoutMs, generation);
      return outputs.map(toWire);
    } finally {
      this.catalog.release(generation);
    }
  }

  async step({ name, sequence, start, end, body }) {
    const entry = this.catalog.get(name);
    if (!entry) throw Object.assign(new Error(`no model named ${name}`), { status: 404 });
    const answer = await this.catalog.step(entry, { id: sequence, start, end, body });
    return { ...answer, output: toWire(answer.output) };
  }

  /** Every process's metrics (this one and each HTTP process), summed into one page. */
  metricsText() {
    const id = this.nextGather++;
    const workers = Object.values(cluster.workers).filter((w) => w.isConnected());
    return new Promise((resolve) => {
      const gather = { json: [], waiting: new Set(workers.map((w) => w.id)) };
      const finish = async () => {
        if (gather.finished) return;
        gather.finished = true;
        clearTimeout(gather.timer);
        this.gathers.delete(id);
        const mine = await this.metrics.registry.getMetricsAsJSON();
        resolve(AggregatorRegistry.aggregate([mine, ...gather.json]).metrics());
      };
      gather.finish = finish;
      gather.timer = setTimeout(finish, METRICS_WAIT_MS); // a stuck process is left out
      this.gathers.set(id, gather);
      for (const worker of workers) worker.send({ t: 'metrics_json', id });
      if (!workers.length) finish();
    });
  }

  gathered(workerId, { id, json }) {
    const gather = this.gathers.get(id);
    if (!gather) return;
    gather.json.push(json);
    gather.waiting.delete(workerId);
    if (!gather.waiting.size) gather.finish();
  }

  exited(worker, code, signal) {
    this.settleHolds(worker.id); // it will ask for no version any more
    for (const gather of this.gathers.values()) {
      gather.waiting.delete(worker.id);
      if (!gather.waiting.size) gather.finish();
    }
    if (this.closing) return;
    const why = signal ? `killed by ${signal}` : `exited with code ${code}`;
    if (this.starting) {
      this.starting.reject(new Error(`HTTP process ${worker.process.pid} ${why} while starting`));
      this.starting = null;
      return;
    }
    this.log(`HTTP process ${worker.process.pid} ${why}: starting another`);
    cluster.fork();
  }

  /** Each HTTP process stops accepting, answers what it holds and exits; resolves then. */
  close() {
    this.closing = true;
    const workers = Object.values(cluster.workers);
    return Promise.all(
      workers.map(
        (worker) =>
          new Promise((resolve) => {
            if (worker.isDead()) return resolve();
            worker.once('exit', resolve);
            if (worker.isConnected()) worker.send({ t: 'close' });
            else worker.kill();
            return undefined;
          }),
      ),
    );
  }
}

module.exports = { Hub };
