'use strict';
// Dynamic batching for one model: requests that arrive together run as one
// batch and are split back. A request of n samples is queued as parts of at
// most maxBatch samples (or the largest padded height); a batch takes whole
// parts, oldest first, of the same per-sample shapes (a free axis, such as a
// sequence length, must agree).
//
// Padded batches: every batch runs at one of a few fixed heights, the
// smallest that holds it, zero rows filling the rest, and holds at most the
// largest. tfjs-node's kernels can pick their blocking by the batch size, so
// the same sample at batch 1 and at batch 64 can differ in the last bit
// (measured: up to 6e-8 on gru's layers path), and so can a row in a
// remainder block of the same batch. catalog.js finds at load the heights at
// which every row comes out with its bits alone, at every position: padded
// to those, an answer is bit-identical whatever else arrived with it. Where
// the path computes each row the same at every batch size and position,
// padding buys nothing and batches run at their own size. `pad(tag)` says
// which, per model version: null (unpadded), true (maxBatch) or the heights.
//
// A batch goes out when a worker is free and either it is full or its
// oldest part has waited maxWaitMs (0: at once). While every worker is busy,
// requests gather: batches grow with the load by themselves.

class Batcher {
  /**
   * run(arrays, rows, tag) -> Promise<outputs[]>: runs one batch on a free
   * worker; idle() says whether one is free. Arrays are {data, shape, dtype};
   * `tag` is what the requests were submitted with (a batch never mixes two).
   */
  constructor({
    run,
    idle,
    maxBatch,
    maxWaitMs = 0,
    queueLimit,
    pad = () => true,
    metrics = null,
  }) {
    Object.assign(this, { run, idle, maxBatch, maxWaitMs, queueLimit, pad, metrics });
    this.queue = []; // parts waiting, oldest first
    this.timer = null;
  }

  /** Samples waiting. */
  get queued() {
    return this.queue.reduce((sum, item) => sum + item.rows, 0);
  }

  /**
   * Queues a request: arrays is one [n, ...] array per model input. Resolves
   * to its outputs (one [n, ...] array per model output); rejects with an
   * error whose `kind` says why (overloaded, deadline) when it cannot run:
   * past `timeoutMs`, queued parts are dropped and running ones discarded.
   */
  submit(arrays, timeoutMs = null, tag = null) {
    const n = arrays[0].shape[0];
    const queued = this.queued;
    if (queued + n > this.queueLimit) {
      const err = new Error(
        `queue full (${queued} samples waiting, limit ${this.queueLimit}): retry later`,
      );
      err.kind = 'overloaded';
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const request = { resolve, reject, results: [], left: 0, done: false, timer: null };
      if (timeoutMs) {
        request.timer = setTimeout(() => {
          const err = new Error(`no answer within the ${timeoutMs} ms deadline`);
          err.kind = 'deadline';
          this.cancel(request, err);
          this.dropFinished();
        }, timeoutMs);
      }
      const key = arrays.map((a) => a.shape.slice(1).join('x')).join('|');
      const most = this.most(tag);
      for (let start = 0; start < n; start += most) {
        const rows = Math.min(most, n - start);
        const part = arrays.map((a) => rowsOf(a, start, rows));
        request.results.push(null);
        request.left += 1;
        const index = request.results.length - 1;
        this.queue.push({ request, index, part, rows, key, tag, at: now() });
      }
      this.gauge();
      this.pump();
    });
  }

  /** Fails a request at once (its deadline passed): parts still queued are dropped. */
  cancel(request, err) {
    if (request.done) return;
    request.done = true;
    clearTimeout(request.timer);
    request.reject(err);
  }

  /** Starts every batch that can start now. */
  pump() {
    while (this.queue.length && this.idle()) {
      this.dropFinished();
      if (!this.queue.length) break;
      const oldest = this.queue[0];
      const most = this.most(oldest.tag);
      const batch = [];
      let rows = 0;
      for (const item of this.queue) {
        const fits = item.key === oldest.key && item.tag === oldest.tag;
        if (!fits || rows + item.rows > most) continue;
        batch.push(item);
        rows += item.rows;
        if (rows === most) break;
      }
      const waited = now() - oldest.at;
      if (rows < most && waited < this.maxWaitMs) {
        if (!this.timer)
          this.timer = setTimeout(() => {
            this.timer = null;
            this.pump();
          }, this.maxWaitMs - waited);
        return;
      }
      const taken = new Set(batch);
      this.queue = this.queue.filter((item) => !taken.has(item));
      this.gauge();
      this.start(batch, rows);
    }
  }

  /** The most rows a batch of `tag` holds: maxBatch, or the largest padded height. */
  most(tag) {
    const heights = this.pad(tag);
    return Array.isArray(heights)
      ? Math.min(heights[heights.length - 1], this.maxBatch)
      : this.maxBatch;
  }

  dropFinished() {
    const live = this.queue.filter((item) => !item.request.done);
    if (live.length === this.queue.length) return;
    this.queue = live;
    this.gauge();
  }

  start(batch, rows) {
    const height = heightOf(this.pad(batch[0].tag), rows, this.maxBatch);
    const inputs = batch[0].part.map((_, i) =>
      stack(
        batch.map((item) => item.part[i]),
        height,
      ),
    );
    if (this.metrics) this.metrics.batchRows(rows);
    this.run(inputs, height, batch[0].tag).then(
      (outputs) => {
        let offset = 0;
        for (const item of batch) {
          this.deliver(
            item,
            outputs.map((o) => rowsOf(o, offset, item.rows)),
          );
          offset += item.rows;
        }
      },
      (err) => batch.forEach((item) => this.cancel(item.request, err)),
    );
  }

  deliver({ request, index }, outputs) {
    if (request.done) return;
    request.results[index] = outputs;
    request.left -= 1;
    if (request.left) return;
    request.done = true;
    clearTimeout(request.timer);
    const parts = request.results;
    request.resolve(
      parts.length === 1 ? parts[0] : parts[0].map((_, o) => stack(parts.map((p) => p[o]))),
    );
  }

  gauge() {
    if (this.metrics) this.metrics.queueDepth(this.queued);
  }

  /** Fails every queued request (shutdown). */
  drain(err) {
    for (const item of this.queue) this.cancel(item.request, err);
    this.queue = [];
    clearTimeout(this.timer);
    this.timer = null;
    this.gauge();
  }
}

const now = () => performance.now();

/** The rows a batch of `rows` runs as: pad() said null/false (its own size), true (maxBatch) or heights (the smallest that holds it). */
function heightOf(heights, rows, maxBatch) {
  if (!heights) return rows;
  if (heights === true) return maxBatch;
  return heights.find((h) => h >= rows) ?? maxBatch;
}

/** Rows [start, start + count) of a [N, ...] array, as a view. */
function rowsOf({ data, shape, dtype }, start, count) {
  const size = shape.slice(1).reduce((a, b) => a * b, 1);
  return {
    data: data.subarray(start * size, (start + count) * size),
    shape: [count, ...shape.slice(1)],
    dtype,
  };
}

/** Arrays of equal per-sample shape, one after another, zero rows up to `height`. */
function stack(arrays, height = null) {
  const { shape, dtype, data } = arrays[0];
  const size = shape.slice(1).reduce((a, b) => a * b, 1);
  const rows = arrays.reduce((sum, a) => sum + a.shape[0], 0);
  const out = new data.constructor((height ?? rows) * size);
  let offset = 0;
  for (const a of arrays) {
    out.set(a.data, offset);
    offset += a.data.length;
  }
  return { data: out, shape: [height ?? rows, ...shape.slice(1)], dtype };
}

module.exports = { Batcher, stack, rowsOf };
