'use strict';
// The processes that run the models: node/worker.js, the same worker the
// Python side drives, over the same framed protocol (io/protocol.js).
//
// Why processes, and why this process loads no TensorFlow: oneDNN's sgemm
// (bundled by TensorFlow 2.19-2.21) moves the stack pointer into a heap
// buffer while it runs, so a signal whose handler runs on that thread then
// corrupts the heap (../shared/PITFALLS.md; oneDNN #4845). A service must
// handle signals (SIGTERM, SIGCHLD for its children, SIGUSR1 that Node
// reserves), so the process that handles them runs no TensorFlow, and the
// workers, which run it, get no signals: each starts in a session of its own
// (detached), so a terminal's Ctrl-C or a signal to the service's process
// group never reaches them, and its pid is ours alone. (Worker threads would
// share this process's signal handlers, so piscina-style threads are out.)
// A worker that dies is started again and its models loaded again; the batch
// it held is retried once on another worker.
const { spawn } = require('child_process');
const path = require('path');
const { encodeFrame, FrameReader } = require('../io/protocol');

const WORKER = path.join(__dirname, '..', '..', 'worker.js');

class WorkerDied extends Error {}

// A worker's stderr comes through this process. Its stdio are sockets
// (Node's 'pipe'), which tfnode.js's quiet load cannot reopen, so its quiet
// start is done here: until the worker first answers, what it prints is
// TensorFlow's start-up (CUDA factories on a CPU-only machine, the computation
// placer) and is dropped. After that, TensorFlow's absl info and warning lines,
// which TF_CPP_MIN_LOG_LEVEL does not reach (a SavedModel's load prints one),
// are dropped too; everything else passes. TFJS_BRIDGE_DEBUG=1 keeps it all.
const ABSL_INFO = /^[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] /;

function forwardStderr(stream, started) {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (text) => {
    const lines = (rest + text).split('\n');
    rest = lines.pop();
    for (const line of lines) {
      const noise = !started() || ABSL_INFO.test(line);
      if (process.env.TFJS_BRIDGE_DEBUG || !noise) process.stderr.write(`${line}\n`);
    }
  });
  stream.on('end', () => rest && process.stderr.write(`${rest}\n`));
}

class WorkerProcess {
  constructor(index, backend, onExit) {
    this.index = index;
    this.busy = 0;
    this.pending = new Map();
    this.nextId = 1;
    this.handles = new Map(); // model key -> handle in this worker
    this.child = spawn(process.execPath, [WORKER, '--backend', backend], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    this.pid = this.child.pid;
    this.answered = false;
    forwardStderr(this.child.stderr, () => this.answered);
    const reader = new FrameReader();
    this.child.stdout.on('data', (chunk) => {
      for (const reply of reader.push(chunk)) {
        this.answered = true;
        const waiter = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        if (!waiter) continue;
        if (reply.ok) waiter.resolve({ result: reply.result, tensors: reply.tensors });
        else waiter.reject(new Error(reply.error));
      }
    });
    this.child.stdin.on('error', () => {}); // a dead worker's pipe: its exit says why
    this.child.on('exit', (code, signal) => {
      this.exited = signal ? `killed by ${signal}` : `exited with code ${code}`;
      const err = new WorkerDied(`worker ${this.index} (pid ${this.pid}) ${this.exited}`);
      for (const waiter of this.pending.values()) waiter.reject(err);
      this.pending.clear();
      onExit(this);
    });
  }

  request(op, fields = {}, tensors = []) {
    if (this.exited) return Promise.reject(new WorkerDied(`worker ${this.index} ${this.exited}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin.write(encodeFrame({ id, op, ...fields }, tensors));
    });
  }

  /** Runs one batch of the model loaded under `key`: {result, tensors}. */
  predict(key, arrays, names) {
    return this.request('predict', { handle: this.handles.get(key), inputs: names }, arrays);
  }

  /** Ends the worker: stdin closed, it finishes what it holds and leaves. */
  stop(graceMs) {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      this.child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      this.child.stdin.end();
    });
  }
}

class Pool {
  /** size worker processes on `backend`; `events`: {restart(worker), free()}. */
  constructor({ size, backend = 'tensorflow', perWorker = 1, events = {} }) {
    Object.assign(this, { size, backend, perWorker, events });
    this.models = new Map(); // key -> {dir, format}: what a restarted worker loads again
    this.stopping = false;
    this.workers = Array.from({ length: size }, (_, i) => this.spawn(i));
  }

  spawn(index) {
    return new WorkerProcess(index, this.backend, (worker) => this.exited(worker));
  }

  async exited(worker) {
    if (this.stopping) return;
    const fresh = this.spawn(worker.index);
    this.workers[worker.index] = fresh;
    if (this.events.restart) this.events.restart(worker);
    try {
      await fresh.request('hello');
      for (const [key, { dir, format }] of this.models) await this.loadIn(fresh, key, dir, format);
    } catch (err) {
      process.stderr.write(`worker ${worker.index}: could not be restarted: ${err.message}\n`);
    }
    this.free();
  }

  /** Waits for every worker to answer; returns their runtime descriptions. */
  async ready() {
    return Promise.all(this.workers.map((w) => w.request('hello').then((r) => r.result)));
  }

  async loadIn(worker, key, dir, format) {
    const { result } = await worker.request('load', { model_dir: dir, format });
    worker.handles.set(key, result.handle);
  }

  /** Loads a model folder in every worker under `key`. */
  async load(key, dir, format) {
    await Promise.all(this.workers.map((w) => this.loadIn(w, key, dir, format)));
    this.models.set(key, { dir, format });
  }

  /** Runs one batch of `key` in worker `index`. */
  predictOn(index, key, arrays, names) {
    return this.workers[index].predict(key, arrays, names);
  }

  /** Runs one batch of `key` in every worker (a warm-up); returns their replies. */
  async warm(key, arrays, names) {
    return Promise.all(this.workers.map((w) => w.predict(key, arrays, names)));
  }

  /** Frees `key` in every worker (once no batch uses it). */
  async unload(key) {
    this.models.delete(key);
    await Promise.all(
      this.workers.map((w) => {
        const handle = w.handles.get(key);
        w.handles.delete(key);
        return handle && !w.exited ? w.request('dispose', { handle }).catch(() => {}) : null;
      }),
    );
  }

  idle() {
    return this.workers.some((w) => !w.exited && w.busy < this.perWorker);
  }

  /** Runs one batch on the least busy worker: {result, tensors}. Retried once if it dies. */
  async predict(key, arrays, names, retry = true) {
    // The worker is taken before anything is awaited, so that idle() says at
    // once that it is busy: requests then gather into the next batch.
    const least = (live) => live.reduce((a, b) => (b.busy < a.busy ? b : a));
    const holding = this.holding(key);
    const worker = least(holding.length ? holding : await this.serving(key));
    worker.busy += 1;
    try {
      return await worker.predict(key, arrays, names);
    } catch (err) {
      if (!(err instanceof WorkerDied) || !retry) throw err;
      return this.predict(key, arrays, names, false);
    } finally {
      worker.busy -= 1;
      this.free();
    }
  }

  /** The live workers that hold `key`. */
  holding(key) {
    return this.workers.filter((w) => !w.exited && w.handles.has(key));
  }

  /** holding(key); while none does (all restarting), waits for one. */
  async serving(key, waitMs = 60000) {
    for (let waited = 0; ; waited += 50) {
      const live = this.holding(key);
      if (live.length) return live;
      if (waited >= waitMs || !this.models.has(key))
        throw new WorkerDied('no worker holds the model (restarting)');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  free() {
    if (this.events.free) setImmediate(this.events.free);
  }

  pids() {
    return this.workers.map((w) => w.pid);
  }

  async stop(graceMs = 5000) {
    this.stopping = true;
    await Promise.all(this.workers.map((w) => w.stop(graceMs)));
  }
}

module.exports = { Pool, WorkerDied };
