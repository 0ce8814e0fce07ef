'use strict';
// The sequence batcher of one model (serve's :stream, docs/streaming.md):
// a client feeds a sequence one step (or a chunk of steps) per request,
// naming it by a sequence id, its first step flagged sequence_start and its
// last sequence_end (Triton's sequence batcher's contract). Each live
// sequence's recurrent state stays in one worker process, in a row (a slot)
// of a table of states there (lib/runtime/streaming.js's sequenceTable).
// The pending steps of many sequences on one worker run as one batched step,
// one step per sequence (or one chunk of T steps each, for requests of the
// same T); while a batch runs, the next gathers, so batches grow with the
// load.
//
// A sequence is freed at its end, or after --stream-idle-ms without a step.
// A worker that dies takes its sequences' states with it: their clients are
// told (410 Gone, "lost"), never answered from a fresh state. What ended,
// expired or was lost is remembered (the last GONE_KEPT ids), so that a late
// step learns why.
const { RequestError } = require('./rest');
const { WorkerDied } = require('./pool');

const GONE_KEPT = 10000;
// The header form of a step's sequence_id (lower case: Node's headers are),
// for proxies and ingresses that route a sequence to its replica by it
// (deploy/kubernetes/, node/scripts/stream-proxy.js).
const SEQUENCE_ID_HEADER = 'x-sequence-id';
const ID_MAX_CHARS = 128;

const gone = (message, kind = 'sequence_gone') => new RequestError(message, 410, kind);

/** Chunks of the same length ([T, ...step] each) stacked into [n, T, ...step]. */
function stackChunks(arrays) {
  const { shape, dtype, data } = arrays[0];
  const out = new data.constructor(data.length * arrays.length);
  arrays.forEach((a, i) => out.set(a.data, i * data.length));
  return { data: out, shape: [arrays.length, ...shape], dtype };
}

/** Row i of a [n, ...] array, as [...]. */
function rowOf({ data, shape, dtype }, i) {
  const size = shape.slice(1).reduce((a, b) => a * b, 1);
  return { data: data.subarray(i * size, (i + 1) * size), shape: shape.slice(1), dtype };
}

/** A sequence id as given (a string or a non-negative integer), or a 400. */
function sequenceIdOf(value) {
  const ok =
    (typeof value === 'string' &&
      value.length > 0 &&
      value.length <= ID_MAX_CHARS &&
      ![...value].some((c) => c < ' ' || c === '\u007f')) || // it is quoted in one-line errors
    (Number.isSafeInteger(value) && value >= 0);
  if (!ok)
    throw new RequestError(
      `sequence_id: want a non-empty string (at most ${ID_MAX_CHARS} characters, no control characters) or a non-negative integer, got ${JSON.stringify(value)}`.slice(
        0,
        200,
      ),
    );
  return String(value);
}

class Sequences {
  /**
   * pool: lib/serve/pool.js's; maxSequences live at once (a 429 beyond);
   * idleMs: a sequence without a step that long is freed; maxBatch: the most
   * steps a batched step holds; metrics: metrics.js's forSequences(model);
   * release(generation): catalog.js's, once a sequence no longer needs its version;
   * streamsOf(generation): catalog.js's, prepares a version's streams (once).
   */
  constructor({ name, pool, maxSequences, idleMs, maxBatch, metrics, release, streamsOf }) {
    Object.assign(this, { name, pool, maxSequences, idleMs, maxBatch, metrics, release });
    this.streamsOf = streamsOf;
    this.generations = new Set(); // the versions sequences ran on: their lanes
    this.live = new Map(); // id -> {id, generation, lane, slot, steps, lastAt, busy}
    this.gone = new Map(); // id -> why it is no longer live (insertion order: oldest first)
    this.sweeper = setInterval(() => this.expire(), Math.min(1000, Math.max(10, idleMs / 4)));
    this.sweeper.unref();
  }

  /**
   * One step, or a chunk of T steps, of a sequence: `id` (checked),
   * `start`/`end` flags, `read(signature)` the request's body read against a
   * step's signature ({format, arrays}: one array [T, ...step]), `current`
   * the version a new sequence runs on (a live one keeps its own). Resolves
   * to {format, output ([T, ...] array: every step's), step (the sequence's
   * steps so far, 1 after its first)}; rejects with a RequestError.
   */
  async step({ id, start, end, read, current }) {
    let sequence = this.live.get(id);
    if (sequence && !this.alive(sequence)) {
      this.lose(sequence);
      sequence = null;
    }
    if (sequence && sequence.busy)
      throw new RequestError(
        `sequence ${id} has a step still running: send its steps one after another`,
        409,
        'conflict',
      );
    if (!start && !sequence) throw this.whyNotLive(id);
    const generation = start ? current : sequence.generation;
    if (!generation.streams) await this.streamsOf(generation);
    if (!generation.streams.key)
      throw new RequestError(`model ${this.name} cannot stream: ${generation.streams.why}`);
    const { format, arrays } = read(generation.streams.signature);
    if (start && sequence) this.close(sequence, 'started again', 'restarted');
    if (start) sequence = await this.open(id, generation);
    sequence.busy = true;
    const at = performance.now();
    try {
      const output = await this.enqueue(sequence, arrays[0], start);
      sequence.steps += output.shape[0];
      this.metrics.stepTime((performance.now() - at) / 1000);
      const answer = { format, output, step: sequence.steps };
      if (end) this.close(sequence, 'ended (sequence_end)', 'ended');
      return answer;
    } catch (err) {
      if (!(err instanceof WorkerDied)) throw err;
      this.lose(sequence);
      throw this.whyNotLive(id);
    } finally {
      sequence.busy = false;
      sequence.lastAt = performance.now();
    }
  }

  /** Why `id` is not live, as the client's error. */
  whyNotLive(id) {
    const why = this.gone.get(id);
    if (!why)
      return new RequestError(
        `sequence ${id} has not started: its first step must carry "sequence_start": true`,
      );
    if (why.kind === 'lost') return gone(`sequence ${id} is lost: ${why.reason}`);
    return new RequestError(
      `sequence ${id} ${why.reason}: start it again with "sequence_start": true`,
      404,
      'not_found',
    );
  }

  /** A new live sequence, in a free slot of the worker that holds fewest. */
  async open(id, generation) {
    if (this.live.size >= this.maxSequences)
      throw new RequestError(
        `too many live sequences (${this.live.size}, --max-sequences ${this.maxSequences}): end some or retry later`,
        429,
        'overloaded',
      );
    const { streams } = generation;
    const workers = await this.pool.serving(streams.key);
    // another start of the same id may have come in while this one waited
    if (this.live.has(id))
      throw new RequestError(`sequence ${id} is being started by another request`, 409, 'conflict');
    const lanes = workers.map((worker) => this.laneOf(generation, worker));
    const lane = lanes.reduce((a, b) => (b.free.length > a.free.length ? b : a));
    if (!lane.free.length || this.live.size >= this.maxSequences)
      throw new RequestError(
        `too many live sequences (${this.live.size}): retry later`,
        429,
        'overloaded',
      );
    const sequence = { id, generation, lane, slot: lane.free.pop(), steps: 0, busy: false };
    sequence.lastAt = performance.now();
    generation.pending += 1; // its version stays loaded while it lives (catalog.js)
    this.generations.add(generation);
    this.gone.delete(id);
    this.live.set(id, sequence);
    this.metrics.live(this.live.size);
    return sequence;
  }

  /** The slots and pending steps of `generation`'s streams in one worker process. */
  laneOf(generation, worker) {
    const lanes = generation.streams.lanes;
    if (!lanes.has(worker)) {
      const { capacity } = generation.streams;
      const lane = {
        worker,
        free: Array.from({ length: capacity }, (_, i) => capacity - 1 - i),
        queue: [],
        running: false,
        // a restarted worker has the model again, but no table yet
        opened: generation.streams.opened.has(worker) ? Promise.resolve() : null,
      };
      lanes.set(worker, lane);
    }
    return lanes.get(worker);
  }

  alive(sequence) {
    const { worker } = sequence.lane;
    return !worker.exited && this.pool.workers[worker.index] === worker;
  }

  /** Frees a sequence's slot and remembers why. */
  close(sequence, reason, kind) {
    if (this.live.get(sequence.id) !== sequence) return;
    this.live.delete(sequence.id);
    if (kind !== 'lost') sequence.lane.free.push(sequence.slot);
    this.gone.set(sequence.id, { reason, kind });
    if (this.gone.size > GONE_KEPT) this.gone.delete(this.gone.keys().next().value);
    this.release(sequence.generation);
    this.metrics.closed(kind);
    this.metrics.live(this.live.size);
  }

  lose(sequence) {
    const { worker } = sequence.lane;
    const why = worker.exited || 'replaced';
    this.close(
      sequence,
      `its state was in worker ${worker.index} (pid ${worker.pid}), now gone (${why}); start it again`,
      'lost',
    );
  }

  /** Every sequence held by a worker that died (pool's restart event), and its lanes. */
  loseDead() {
    for (const sequence of [...this.live.values()]) if (!this.alive(sequence)) this.lose(sequence);
    for (const generation of this.generations) {
      for (const worker of [...generation.streams.lanes.keys()])
        if (worker.exited && !generation.streams.lanes.get(worker).running)
          generation.streams.lanes.delete(worker);
    }
  }

  /** Frees the sequences idle past idleMs. */
  expire() {
    const now = performance.now();
    for (const sequence of [...this.live.values()]) {
      if (!sequence.busy && now - sequence.lastAt > this.idleMs)
        this.close(
          sequence,
          `expired: no step for ${this.idleMs} ms (--stream-idle-ms)`,
          'expired',
        );
    }
  }

  enqueue(sequence, step, start) {
    return new Promise((resolve, reject) => {
      sequence.lane.queue.push({ sequence, step, start, resolve, reject });
      this.pump(sequence.lane, sequence.generation);
    });
  }

  /** Runs the lane's pending steps as one batch, unless one is running: they gather meanwhile. */
  async pump(lane, generation) {
    if (lane.running || !lane.queue.length) return;
    lane.running = true;
    // chunks of one length batch together; the others wait, in order, for the next batch
    const steps = lane.queue[0].step.shape[0];
    const batch = [];
    lane.queue = lane.queue.filter((item) => {
      const taken = batch.length < this.maxBatch && item.step.shape[0] === steps;
      if (taken) batch.push(item);
      return !taken;
    });
    const { worker } = lane;
    worker.busy += 1; // the predict batcher sees this worker busy meanwhile
    try {
      const key = generation.streams.key;
      if (!lane.opened)
        lane.opened = this.openTable(worker, key, generation.streams.capacity).catch((err) => {
          lane.opened = null; // tried again at the next batch
          throw err;
        });
      await lane.opened;
      const started = performance.now();
      const { tensors } = await worker.request(
        'sequences_step',
        {
          handle: worker.handles.get(key),
          slots: batch.map((item) => item.sequence.slot),
          starts: batch.map((item) => item.start),
        },
        [stackChunks(batch.map((item) => item.step))],
      );
      this.metrics.batch(batch.length, (performance.now() - started) / 1000);
      batch.forEach((item, i) => item.resolve(rowOf(tensors[0], i)));
    } catch (err) {
      batch.forEach((item) => item.reject(err));
    } finally {
      worker.busy -= 1;
      lane.running = false;
      this.pool.free();
      if (lane.queue.length) this.pump(lane, generation);
    }
  }

  /** The sequences' table in a worker that has none yet (a restarted one). */
  async openTable(worker, key, capacity) {
    if (!worker.handles.has(key)) throw new WorkerDied('no worker holds the model (restarting)');
    await worker.request('sequences_open', { handle: worker.handles.get(key), capacity });
  }

  /** Fails every pending step (shutdown). */
  drain(err) {
    for (const generation of this.generations) {
      for (const lane of generation.streams.lanes.values()) {
        lane.queue.splice(0).forEach((item) => item.reject(err));
      }
    }
    clearInterval(this.sweeper);
  }
}

module.exports = { Sequences, sequenceIdOf, SEQUENCE_ID_HEADER };
