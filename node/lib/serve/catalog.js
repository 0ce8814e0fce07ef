'use strict';
// The models a service serves: each a checked model folder, loaded in every
// worker, warmed, and batched (batcher.js). A folder replaced in place (the
// atomic swap of `tfjs-bridge train`/`convert` and node/train.js) is seen by
// polling its inode and manifest, loaded as a new version next to the old
// one, and switched to only once it loaded and answered; a folder that fails
// any check (a sha256 that differs, a missing file, a broken model) is
// refused and the old version keeps serving. The old version is freed once
// its last batch is done.
const fs = require('fs');
const path = require('path');
const { readManifest, MANIFEST } = require('../io/manifest');
const { checkIntegrity } = require('../io/modelfiles');
const { signatureOf } = require('../io/inputs');
const { chooseFormat, verifiedPaths, batchMs } = require('../runtime/choose');
const { FORMATS, runtimeName } = require('../runtime/vocabulary');
const { DTYPES } = require('../io/protocol');
const { Batcher, rowsOf, stack } = require('./batcher');
const { BATCH_OVERHEAD_MS, choosePath, describeChoice } = require('./choice');
const { Sequences } = require('./sequences');
const { readJsonRequest } = require('./rest');

/** What identifies a folder's content: its inode (a swap changes it) and its manifest's stat. */
function stampOf(dir) {
  try {
    const folder = fs.statSync(dir);
    const manifest = fs.statSync(path.join(dir, MANIFEST));
    return `${folder.ino}:${manifest.ino}:${manifest.mtimeMs}:${manifest.size}`;
  } catch {
    return null;
  }
}

/** rows samples of one input (a free axis of length 1), each value from value(). */
function inputArray(spec, rows, value) {
  const shape = [rows, ...spec.shape.map((d) => (d === null ? 1 : d))];
  const data = new DTYPES[spec.dtype](shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = value();
  return { data, shape, dtype: spec.dtype };
}

/** Padding-like values: the lowest token id, or zeros. */
const zeros = (spec, rows) => inputArray(spec, rows, () => (spec.kind === 'tokens' ? spec.low : 0));

/** Seeded values within the input's domain: token ids in [low, high), or floats in [low, high]. */
function randomInput(spec, rows, seed) {
  let state = seed >>> 0;
  const next = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const low = spec.low ?? 0;
  const high = spec.high ?? 1;
  return inputArray(spec, rows, () =>
    spec.kind === 'tokens' ? low + Math.floor(next() * (high - low)) : low + next() * (high - low),
  );
}

// XLA compiles a program per batch shape at its first call, so the ladder
// costs six more compilations at load: 4-6 s each for gru, 7-13 s for
// rnn_stack on a busy 2-core machine (load 7), whose rows keep their bits at
// 4, 16 and 24 and not at 8 or 32. A model whose compilation takes longer
// (spam, 200 steps) keeps the three sizes 1, 8 and maxBatch.
const XLA_LADDER_MS = 20000;

const sameBits = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

class Catalog {
  constructor({ pool, metrics, backend, format = null, batching, streaming, log, switched }) {
    Object.assign(this, { pool, metrics, backend, format, batching, log });
    // called with (entry, old) when a reload switches versions, before the old
    // one may be freed (hub.js holds it until every HTTP process has seen the switch)
    this.switched = switched || (() => {});
    // :stream (sequences.js): {maxSequences (0: off), idleMs, maxBatch}
    this.streaming = streaming || { maxSequences: 0 };
    this.models = new Map(); // name -> {dir, current, batcher, refused}
  }

  /**
   * Loads one version of a folder in every worker, warmed and checked, on the
   * path it is served on: --format's; else, when parity.json has figures for
   * its verified paths, the best one for serving weighing how each batches
   * (choice.js); else choose.js's choice. Throws if anything fails.
   */
  async prepare(name, dir, version) {
    const manifest = readManifest(dir);
    const signature = signatureOf(manifest);
    const base = {
      version,
      stamp: stampOf(dir),
      dir,
      manifest,
      signature,
      inputNames: signature.inputs.map((s) => s.name),
      pending: 0, // requests checked against this version and not yet answered
      retired: false,
    };
    if (this.format) {
      const asked = { format: this.format, runtime: null };
      return this.loadPath(name, base, asked, 'asked for');
    }
    const { maxBatch } = this.batching;
    const { paths } = verifiedPaths(dir, { backends: [this.backend] });
    const timed = paths.filter((p) => batchMs(p.speed, 1) !== null);
    if (!timed.length) {
      const chosen = chooseFormat(dir, { batch: maxBatch, backends: [this.backend] });
      return this.loadPath(name, base, chosen, chosen.why);
    }
    const loaded = [];
    let choice;
    try {
      choice = await choosePath(
        timed,
        maxBatch,
        (p) => this.staticBatching(p.format, signature),
        async (p) => {
          const generation = await this.loadPath(name, base, p, '');
          loaded.push(generation);
          return generation;
        },
        BATCH_OVERHEAD_MS,
      );
    } finally {
      const kept = choice && choice.state;
      await Promise.all(loaded.filter((g) => g !== kept).map((g) => this.pool.unload(g.key)));
    }
    choice.state.why = describeChoice(choice, maxBatch, BATCH_OVERHEAD_MS);
    return choice.state;
  }

  /** Loads one path ({format, runtime}) of a version in every worker, warms it and checks how it batches. */
  async loadPath(name, base, { format, runtime }, why) {
    const { dir, manifest, signature } = base;
    checkIntegrity(dir, FORMATS[format].folder, manifest);
    const key = `${name}@${base.version}/${format}`;
    await this.pool.load(key, dir, format);
    const generation = {
      ...base,
      key,
      format,
      runtime: runtime || runtimeName(this.backend, format),
      why,
    };
    try {
      // One full batch through every worker: the first call builds kernels and
      // caches, and it tells the outputs' names, shapes and dtypes.
      const arrays = signature.inputs.map((spec) => zeros(spec, this.batching.maxBatch));
      const warmStarted = performance.now();
      const replies = await this.pool.warm(key, arrays, generation.inputNames);
      generation.warmMs = performance.now() - warmStarted; // XLA: one compilation
      const { result, tensors } = replies[0];
      generation.outputNames = this.outputNames(result.outputs, signature);
      generation.outputs = tensors.map((t, i) => ({
        name: generation.outputNames[i],
        dtype: t.dtype,
        shape: t.shape.slice(1),
      }));
      Object.assign(generation, await this.batchingFor(generation));
    } catch (err) {
      await this.pool.unload(key);
      throw err;
    }
    // with streams off, prepareStreams says so at once (it loads nothing)
    if (!this.streaming.maxSequences)
      generation.streamsReady = this.prepareStreams(name, generation);
    return generation;
  }

  /**
   * A version's streams, prepared at its first :stream start (once: later
   * starts wait for the same preparation), so a service whose clients never
   * stream loads nothing more and starts no slower. Logs the outcome.
   */
  streamsOf(name, generation) {
    if (!generation.streamsReady)
      generation.streamsReady = this.prepareStreams(name, generation).then(() =>
        this.logStreams(name, generation),
      );
    return generation.streamsReady;
  }

  /**
   * What :stream runs on for a version: its layers model (loaded once more
   * unless that is the path it serves on), a table of the sequences' states
   * opened in every worker and warmed by one step. Sets generation.streams
   * to {key, capacity, signature (one step's), lanes, opened} or, for a
   * model that cannot stream (stream.js says why) or a folder without a
   * layers model, {why}.
   */
  async prepareStreams(name, generation) {
    const { maxSequences } = this.streaming;
    if (!maxSequences) {
      generation.streams = { why: 'streams are off: --max-sequences 0' };
      return;
    }
    const { dir, manifest, signature, version } = generation;
    const key = generation.format === 'layers' ? generation.key : `${name}@${version}/stream`;
    let loaded = false;
    try {
      if (signature.inputs.length !== 1)
        throw new Error(`a stream takes one input, the model has ${signature.inputs.length}`);
      checkIntegrity(dir, FORMATS.layers.folder, manifest);
      if (key !== generation.key) {
        await this.pool.load(key, dir, 'layers');
        loaded = true;
      }
      const [spec] = signature.inputs;
      const step = { ...spec, shape: spec.shape.slice(1) }; // one step: no time axis
      const workers = this.pool.holding(key);
      for (const worker of workers) {
        const handle = worker.handles.get(key);
        await worker.request('sequences_open', { handle, capacity: maxSequences });
        const first = zeros(step, 1); // one step [1, ...step], as a chunk [1, 1, ...step]
        await worker.request('sequences_step', { handle, slots: [0], starts: [true] }, [
          { ...first, shape: [1, ...first.shape] },
        ]);
      }
      generation.streams = {
        key,
        capacity: maxSequences,
        signature: { inputs: [step], outputs: signature.outputs },
        lanes: new Map(), // worker -> its slots and pending steps (sequences.js)
        opened: new Set(workers),
      };
    } catch (err) {
      if (loaded) await this.pool.unload(key);
      generation.streams = { why: String(err.message).split('\n')[0] };
    }
  }

  /** Frees a version in every worker: its path, and its streams' layers model if separate. */
  async unloadGeneration(generation) {
    const streamKey = generation.streams && generation.streams.key;
    if (streamKey && streamKey !== generation.key) await this.pool.unload(streamKey);
    await this.pool.unload(generation.key);
  }

  /**
   * How a path batches when that is known without running it
   * ({heights, batching}; heights null: unpadded), else null: what was asked
   * for, and in auto mode a free axis, whose lengths no check at load can
   * cover: padded to maxBatch.
   */
  staticBatching(format, signature) {
    const { mode, maxBatch } = this.batching;
    if (mode === 'padded') return { heights: [maxBatch], batching: 'padded (asked for)' };
    if (mode === 'unpadded')
      return {
        heights: null,
        batching: 'unpadded (asked for: an answer may change in its last bits with its batch)',
      };
    if (signature.inputs.some((s) => s.shape.includes(null)))
      return {
        heights: [maxBatch],
        batching: `padded to ${maxBatch}: a free axis, whose lengths a check at load cannot cover`,
      };
    return null;
  }

  /**
   * How batches of this version run ({heights, batching}): heights null,
   * at their own size; else padded with zero rows to the smallest of
   * `heights` that holds them, and never more rows than the largest.
   * tfjs-node's kernels block rows by the batch size, so a sample can come
   * out with other last bits in a batch of another size, and in a remainder
   * block of the same batch (measured on AVX2: rows 30 and 31 of XLA's batch
   * of 32 for gru). So in auto mode it is measured, on maxBatch seeded
   * samples: at a batch size, groups of samples are run in every rotation,
   * and the size counts only if each sample comes out with the same bits at
   * every position (and beside zero rows, as padding puts them). Sizes that
   * give every sample the same bits form a class. If one class holds every
   * size from 1 to maxBatch, batches run unpadded. Otherwise the heights are
   * the class, among the sizes 1, 2, 4, 8, 16, 24 and maxBatch, with the
   * largest size (then the smallest): padded to those, an answer is
   * bit-identical whatever else arrived with it. XLA compiles a program per
   * batch shape, so it is never unpadded, and it is checked on the whole
   * ladder only when a compilation (the warm-up's, at maxBatch) took less
   * than XLA_LADDER_MS; else at 1, 8 and maxBatch. On AVX2, gru's XLA rows
   * keep their bits at 4, 16 and 24 but not at 8 or 32: without 4, 16 and 24
   * it ran one row a batch.
   */
  async batchingFor({ key, signature, format, inputNames, warmMs }) {
    const fixed = this.staticBatching(format, signature);
    if (fixed) return fixed;
    const { maxBatch } = this.batching;
    const inputs = signature.inputs.map((spec, i) => randomInput(spec, maxBatch, 1234 + i));
    const run = async (parts) => (await this.pool.predictOn(0, key, parts, inputNames)).tensors;
    const rowOf = (tensors, r) => tensors.map((t) => rowsOf(t, r, 1));
    const same = (a, b) => a.every((t, o) => sameBits(t.data, b[o].data));
    const batchOf = (order, height) =>
      inputs.map((a) =>
        stack(
          order.map((r) => rowsOf(a, r, 1)),
          height,
        ),
      );
    // Each sample's answer at this batch size, or null when some position
    // (or zero rows beside it) gives it other bits.
    const answersAt = async (size) => {
      const answers = new Array(maxBatch).fill(null);
      const agrees = (r, answer) => {
        if (!answers[r]) answers[r] = answer;
        return same(answer, answers[r]);
      };
      for (let first = 0; first < maxBatch; first += size) {
        for (let turn = 0; turn < size; turn++) {
          const order = Array.from(
            { length: size },
            (_, p) => (first + ((p + turn) % size)) % maxBatch,
          );
          const out = await run(batchOf(order, size));
          if (!order.every((r, p) => agrees(r, rowOf(out, p)))) return null;
        }
      }
      const real = Array.from({ length: Math.ceil(size / 2) }, (_, p) => p);
      const out = await run(batchOf(real, size));
      return real.every((r) => agrees(r, rowOf(out, r))) ? answers : null;
    };
    const classes = []; // [{sizes, answers}]: sizes that give every sample the same bits
    const measure = async (size) => {
      const answers = await answersAt(size);
      if (!answers) return;
      const found = classes.find((c) => c.answers.every((a, r) => same(a, answers[r])));
      if (found) found.sizes.push(size);
      else classes.push({ sizes: [size], answers });
    };
    const xla = format === 'saved_model_xla';
    const fewer = xla && !(warmMs < XLA_LADDER_MS) ? [1, 8] : [1, 2, 4, 8, 16, 24];
    const ladder = [...new Set([...fewer, maxBatch].filter((b) => b <= maxBatch))];
    for (const size of ladder) await measure(size);
    if (!xla && classes.length === 1 && classes[0].sizes.length === ladder.length) {
      for (let size = 2; size <= maxBatch; size++) if (!ladder.includes(size)) await measure(size);
      if (classes.length === 1 && classes[0].sizes.length === maxBatch)
        return {
          heights: null,
          batching: `unpadded: every row the same bits at every position of batches of 1-${maxBatch} (checked at load)`,
        };
    }
    const sizes = (c) => c.sizes.filter((b) => ladder.includes(b)).sort((a, b) => a - b);
    const best = classes
      .map(sizes)
      .filter((h) => h.length)
      .sort((a, b) => b[b.length - 1] - a[a.length - 1] || a[0] - b[0])[0];
    const why = xla
      ? 'XLA compiles a program per batch shape'
      : `the last bits of a row change with the batch size or the position (${classes.length} classes of sizes)`;
    if (best.length === 1 && best[0] === 1)
      return {
        heights: best,
        batching:
          `one row a batch: ${why}, and at no size checked (${ladder.slice(1).join(', ')}) ` +
          'does every row come out with the same bits at every position (checked at load)',
      };
    const most = best[best.length - 1];
    const cap = most < maxBatch ? ` (at most ${most} rows a batch)` : '';
    return {
      heights: best,
      batching:
        `padded to the smallest of ${best.join(', ')} that holds the batch${cap}: ${why}; ` +
        `at these sizes every row the same bits at every position (checked at load)`,
    };
  }

  /**
   * The Keras output names (the signature's) for the worker's outputs, in the
   * worker's order. Folders exported before November 2026 call a graph or
   * SavedModel's one output "output".
   */
  outputNames(workerNames, signature) {
    const keras = signature.outputs || [];
    if (keras.length === workerNames.length) {
      if (workerNames.every((n) => keras.includes(n))) return workerNames;
      if (keras.length === 1) return keras;
    }
    return workerNames;
  }

  async add(name, dir) {
    if (this.models.has(name))
      throw new Error(`two models named ${name}: name them (--model NAME=DIR)`);
    const entry = { name, dir, current: null, refused: null, batcher: null, sequences: null };
    entry.current = await this.prepare(name, dir, 1);
    const { maxSequences, idleMs, maxBatch: maxSteps } = this.streaming;
    entry.sequences = new Sequences({
      name,
      pool: this.pool,
      maxSequences,
      idleMs,
      maxBatch: maxSteps,
      metrics: this.metrics.forSequences(name),
      release: (generation) => this.release(generation),
      streamsOf: (generation) => this.streamsOf(name, generation),
    });
    entry.batcher = new Batcher({
      ...this.batching,
      idle: () => this.pool.idle(),
      run: (arrays, rows, generation) => this.runBatch(entry, generation, arrays, rows),
      pad: (generation) => generation.heights,
      metrics: this.metrics.forModel(name),
    });
    this.models.set(name, entry);
    const { runtime, why, batching } = entry.current;
    this.log(`model ${name}: ${dir} runs on ${runtime} (${why}); batches ${batching}`);
    this.logStreams(name, entry.current);
    return entry;
  }

  /** The start-up line about :stream, and, at a version's first start, what it found. */
  logStreams(name, generation) {
    const { streams } = generation;
    if (!streams)
      this.log(
        `model ${name}: :stream ready at its first sequence_start (on ${runtimeName(this.backend, 'layers')} streams, up to ${this.streaming.maxSequences} live sequences)`,
      );
    else
      this.log(
        streams.key
          ? `model ${name}: :stream on ${runtimeName(this.backend, 'layers')} streams, up to ${streams.capacity} live sequences`
          : `model ${name}: no :stream (${streams.why})`,
      );
  }

  /** A batch runs on the version its requests were checked against, even after a reload. */
  async runBatch(entry, generation, arrays, rows) {
    const started = performance.now();
    const { tensors } = await this.pool.predict(generation.key, arrays, generation.inputNames);
    this.metrics.batchTime(entry.name, generation.runtime, (performance.now() - started) / 1000);
    this.metrics.predicted(entry.name, rows);
    return tensors;
  }

  /**
   * The version a new request is checked against and runs on; release() it
   * once answered. A replaced version is freed when its last request is.
   */
  acquire(entry) {
    const generation = entry.current;
    generation.pending += 1;
    return generation;
  }

  release(generation) {
    generation.pending -= 1;
    if (generation.retired && !generation.pending) this.unloadGeneration(generation);
  }

  get(name) {
    return this.models.get(name);
  }

  /** A :predict request's checked arrays, batched on `generation` (acquired): its outputs. */
  submit(entry, arrays, timeoutMs, generation) {
    return entry.batcher.submit(arrays, timeoutMs, generation);
  }

  /**
   * One :stream step of entry's model: {id (checked), start, end, body (the
   * JSON body without the sequence fields)}; the body is read against the
   * stream's step signature here, after the checks that come first
   * (sequences.js). Resolves to {format, output, step}.
   */
  step(entry, { id, start, end, body }) {
    return entry.sequences.step({
      id,
      start,
      end,
      read: (signature) => readJsonRequest(body, signature),
      current: entry.current,
    });
  }

  /** What an HTTP process needs of each model's current version (hub.js sends it). */
  view() {
    return [...this.models.values()].map(({ name, current }) => ({
      name,
      current: {
        version: current.version,
        signature: current.signature,
        outputNames: current.outputNames,
        outputs: current.outputs,
        runtime: current.runtime,
        why: current.why,
        dir: current.dir,
      },
    }));
  }

  /** Every live sequence whose worker died is lost (the pool restarted it). */
  loseSequences() {
    for (const entry of this.models.values()) entry.sequences.loseDead();
  }

  /** Pumps every model's queue (a worker became free). */
  pump() {
    for (const entry of this.models.values()) entry.batcher.pump();
  }

  /** Reloads every folder whose content changed since it was loaded. */
  async checkForChanges() {
    for (const entry of this.models.values()) {
      const stamp = stampOf(entry.dir);
      if (!stamp || stamp === entry.current.stamp || stamp === entry.refused) continue;
      await this.reload(entry, stamp);
    }
  }

  async reload(entry, stamp) {
    const version = entry.current.version + 1;
    let next;
    try {
      next = await this.prepare(entry.name, entry.dir, version);
    } catch (err) {
      entry.refused = stamp;
      this.metrics.reloaded(entry.name, 'refused');
      this.log(
        `model ${entry.name}: the new folder is refused, version ${entry.current.version} keeps serving: ${String(err.message).split('\n')[0]}`,
      );
      return;
    }
    const old = entry.current;
    entry.current = next;
    entry.refused = null;
    old.retired = true;
    this.switched(entry, old);
    if (!old.pending) await this.unloadGeneration(old);
    this.metrics.reloaded(entry.name, 'loaded');
    this.log(
      `model ${entry.name}: version ${version} loaded from ${entry.dir} (${next.runtime}; batches ${next.batching})`,
    );
    this.logStreams(entry.name, next);
  }

  /** Polls for changed folders every intervalMs (0: never); returns a stop function. */
  watch(intervalMs) {
    if (!intervalMs) return () => {};
    let busy = false;
    const timer = setInterval(async () => {
      if (busy) return;
      busy = true;
      try {
        await this.checkForChanges();
      } finally {
        busy = false;
      }
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  drain(err) {
    for (const entry of this.models.values()) {
      entry.batcher.drain(err);
      entry.sequences.drain(err);
    }
  }
}

module.exports = { Catalog };
