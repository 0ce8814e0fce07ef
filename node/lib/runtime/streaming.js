'use strict';
// Streams (lib/layers/stream.js) as the entry points use them:
//   streamLines    predict.js --stream: one step per line in, one output line out
//   streamRunner   a layers runner whose predict() feeds each sequence to
//                  streams in chunks (the worker's stream paths, verified
//                  like any other path: py/tfjs_bridge/runtime/runtimes.py)
//   sequenceTable  the states of many sequences, one row each, stepped
//                  together (the worker's half of serve's :stream)
const { openStreams, streamOpsFor } = require('../layers/stream');
const { checkInput } = require('../io/inputs');

/** mulberry32 in [0, 1): seeded chunk sizes, the same on every run (tests draw their weights from it too). */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Chunk sizes that add up to `steps`: all 1 ('steps'), drawn from
 * 1..max(1, steps/4) ('random', from `rand`), or the sizes given (an array:
 * verify feeds a stateful Keras model the same chunks, py/tfjs_bridge/parity/stateful.py).
 */
function chunkSizes(steps, chunks, rand) {
  if (Array.isArray(chunks)) {
    const sum = chunks.reduce((a, b) => a + b, 0);
    if (!chunks.every((n) => Number.isInteger(n) && n > 0) || sum !== steps) {
      throw new Error(
        `stream chunks: positive integers adding up to ${steps} steps, got [${chunks}]`,
      );
    }
    return chunks;
  }
  if (chunks === 'steps') return new Array(steps).fill(1);
  if (chunks !== 'random') throw new Error(`stream chunks: 'steps' or 'random', got '${chunks}'`);
  const largest = Math.max(1, Math.floor(steps / 4));
  const sizes = [];
  for (let left = steps; left > 0;) {
    const size = Math.min(left, 1 + Math.floor(rand() * largest));
    sizes.push(size);
    left -= size;
  }
  return sizes;
}

/**
 * `runner` (a layers runner: runners.js) whose predict() opens a batch of
 * streams for the batch it is given and feeds each sequence's steps in
 * chunks: `chunks` 'random' (seeded by `seed`, a new draw each call),
 * 'steps', or an array of sizes. It returns what the whole model returns: every step's output for
 * a return_sequences model, else the last step's; with `perStep`, every
 * step's output either way (a last-output model's "if the sequence ended
 * here"). `dropState` resets every stream after each chunk: the negative
 * control, a stream that forgets, which verify must fail. `staleSteps`
 * answers every step of a chunk with the chunk's last output: the negative
 * control of a last-output model's check on every prefix, a stream right at
 * the end of each chunk (so at the sequence's end) and wrong before it.
 * `ops` ('auto', 'array', 'tensor'): which ops step the streams
 * (lib/layers/stream.js's streamOpsFor); streamOps() says which ran, per batch size.
 */
function streamRunner(
  tf,
  runner,
  {
    chunks = 'random',
    seed = 0,
    dropState = false,
    perStep = false,
    staleSteps = false,
    ops = 'auto',
  } = {},
) {
  // refused models (and array ops asked for where there are none) fail at
  // load, before any input is fed
  openStreams(tf, runner.model, { batch: 1, ops }).dispose();
  const rand = seeded(seed);
  const used = {}; // batch -> the ops its streams stepped on
  return {
    ...runner,
    streamOps: () => ({ ...used }),
    predict: async (xs) => {
      if (xs.length !== 1) throw new Error(`a stream takes one input, got ${xs.length}`);
      const [x] = xs;
      const [batch, steps] = x.shape;
      const streams = openStreams(tf, runner.model, { batch, ops });
      used[batch] = streams.ops;
      const parts = [];
      try {
        let t = 0;
        for (const size of chunkSizes(steps, chunks, rand)) {
          parts.push(
            tf.tidy(() => {
              const y = streams.feed(tf.slice(x, [0, t], [batch, size, ...x.shape.slice(2)]));
              if (!staleSteps) return y;
              const last = tf.slice(y, [0, size - 1], [batch, 1]);
              return tf.tile(last, [1, size, ...y.shape.slice(2).map(() => 1)]);
            }),
          );
          if (dropState) streams.reset();
          t += size;
        }
        const whole = tf.concat(parts, 1);
        if (perStep || streams.returnsSequences) return [whole];
        const last = tf.squeeze(tf.slice(whole, [0, steps - 1], [batch, 1]), [1]);
        whole.dispose();
        return [last];
      } finally {
        tf.dispose(parts);
        streams.dispose();
      }
    },
  };
}

/**
 * predict.js --stream: one stream on `model` (a tf.LayersModel) fed from
 * `lines` (an async iterable of text lines), each line one step, a JSON
 * array of the step's features (for token ids, one id); `write(text)` gets
 * one JSON line per step, that step's output. `{"reset": true}` starts a
 * new sequence and writes nothing; `{"info": true}` writes one line saying
 * which ops step the stream: {"ops", "why", "backend"}. A line that is not a step throws, naming
 * the line; `spec` is the model's one input from its signature (lib/io/inputs.js).
 */
async function streamLines(tf, model, spec, lines, write) {
  const streams = openStreams(tf, model, { batch: 1 });
  const stepShape = spec.shape.slice(1);
  const size = stepShape.reduce((a, b) => a * b, 1);
  const stepSpec = { ...spec, shape: [null, ...stepShape] };
  const what = stepShape.length ? `an array of ${size} numbers` : 'one token id';
  let number = 0;
  try {
    for await (const line of lines) {
      number += 1;
      const where = `stdin line ${number}`;
      if (!line.trim()) continue;
      let value;
      try {
        value = JSON.parse(line);
      } catch {
        throw new Error(`${where}: not JSON (want ${what} per line)`);
      }
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        const [key, more] = Object.keys(value);
        if (!['reset', 'info'].includes(key) || value[key] !== true || more !== undefined) {
          throw new Error(
            `${where}: the objects a line may hold are {"reset": true} and {"info": true}`,
          );
        }
        if (key === 'reset') streams.reset();
        // which ops step this stream (lib/layers/stream.js's choice), on stdout, never stderr
        else
          write(
            `${JSON.stringify({ ops: streams.ops, why: streams.opsWhy, backend: tf.getBackend() })}\n`,
          );
        continue;
      }
      const flat = [value].flat(Infinity);
      const numbers = flat.every((v) => typeof v === 'number' && Number.isFinite(v));
      const integers = spec.dtype !== 'int32' || flat.every(Number.isInteger);
      if (!numbers || !integers || flat.length !== size) {
        throw new Error(`${where}: want ${what}, got ${JSON.stringify(value).slice(0, 80)}`);
      }
      const data = spec.dtype === 'int32' ? Int32Array.from(flat) : Float32Array.from(flat);
      checkInput({ data, shape: [1, 1, ...stepShape], dtype: spec.dtype }, where, stepSpec);
      const y = tf.tidy(() => streams.step(tf.tensor(data, [1, ...stepShape], spec.dtype)));
      const out = y.arraySync()[0];
      y.dispose();
      write(`${JSON.stringify(out)}\n`);
    }
  } finally {
    streams.dispose();
  }
  return number;
}

/**
 * The states of up to `capacity` sequences of `model` (a tf.LayersModel),
 * one row (a slot) each, for the service's sequence batcher
 * (lib/serve/sequences.js): feed(x, slots, starts) runs a chunk of T steps
 * of the sequences in `slots` (distinct) together, x [n, T, ...step], each
 * from its own row (the zero state where `starts` says it begins), writes
 * each new state back to its row and returns every step's output
 * [n, T, ...]; step(x [n, ...step], slots, starts) is one step. The rows
 * are gathered into one batch of streams (lib/layers/stream.js), so a step
 * of n sequences is one batched step. The rows live in plain Float32Arrays,
 * not tensors: gathering and writing back n rows is then a copy of n × width
 * floats, where a tensor table cost a gather, a multiply and a scatter that
 * rewrote the whole table on every batched step. `mixRows` writes each state
 * back to the next sequence's row: the negative control of the service's
 * tests, a batcher that mixes up its sequences. `ops`: openStreams's
 * (auto: lib/layers/stream.js's crossover per batch size). Throws "cannot stream: ..."
 * when the model cannot.
 */
function sequenceTable(tf, model, capacity, { mixRows = false, ops = 'auto' } = {}) {
  const probe = openStreams(tf, model, { batch: 1 });
  const zero = probe.getState();
  const widths = zero.map((state) => state.map((t) => t.shape[1]));
  const { returnsSequences } = probe;
  tf.dispose(zero);
  probe.dispose();
  // one array per state tensor ([h], or [h, c] for an LSTM), capacity rows each
  let rows = widths.map((state) => state.map((w) => new Float32Array(capacity * w)));
  const streamsOf = new Map(); // batch size -> streams of that many rows, reused

  const feed = (x, slots, starts) => {
    const n = slots.length;
    const bad = slots.find((s) => !(Number.isInteger(s) && s >= 0 && s < capacity));
    if (bad !== undefined) throw new Error(`sequences: no slot ${bad} (0 to ${capacity - 1})`);
    if (new Set(slots).size !== n) throw new Error('sequences: a slot twice in one step');
    if (x.shape[0] !== n) throw new Error(`sequences: ${x.shape[0]} steps for ${n} slots`);
    if (!streamsOf.has(n)) streamsOf.set(n, openStreams(tf, model, { batch: n, ops }));
    const streams = streamsOf.get(n);
    const gathered = rows.map((state, i) =>
      state.map((table, j) => {
        const w = widths[i][j];
        const batch = new Float32Array(n * w); // zeros: the rows that start
        slots.forEach((slot, k) => {
          if (!starts[k]) batch.set(table.subarray(slot * w, (slot + 1) * w), k * w);
        });
        return tf.tensor2d(batch, [n, w]);
      }),
    );
    streams.setState(gathered);
    tf.dispose(gathered);
    const y = streams.feed(x);
    const next = streams.getState();
    try {
      const back = mixRows && n > 1 ? [...slots.slice(1), slots[0]] : slots;
      next.forEach((state, i) =>
        state.forEach((t, j) => {
          const w = widths[i][j];
          const values = t.dataSync();
          back.forEach((slot, k) => rows[i][j].set(values.subarray(k * w, (k + 1) * w), slot * w));
        }),
      );
    } catch (err) {
      y.dispose();
      throw err;
    } finally {
      tf.dispose(next);
    }
    return y;
  };

  const step = (x, slots, starts) => {
    const chunk = tf.expandDims(x, 1);
    try {
      const y = feed(chunk, slots, starts);
      const squeezed = tf.squeeze(y, [1]);
      y.dispose();
      return squeezed;
    } finally {
      chunk.dispose();
    }
  };

  const dispose = () => {
    rows = [];
    streamsOf.forEach((streams) => streams.dispose());
    streamsOf.clear();
  };

  /** Which ops a batched step of n sequences runs on (lib/layers/stream.js's choice). */
  const opsOf = (n) => streamOpsFor(tf, model, n, ops).ops;

  return { capacity, returnsSequences, feed, step, opsOf, dispose };
}

module.exports = { streamRunner, streamLines, sequenceTable, chunkSizes, seeded };
