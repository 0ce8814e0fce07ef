'use strict';
// Streams (lib/layers/stream.js) against the whole-sequence model on the
// same backend, run by tfjs's stock loop (the reference fast_rnn.test.js
// uses too; SimpleRNN has no other loop): fed step by step and in random
// chunks, a return_sequences model gives every step's output, a last-output
// model its output on every prefix; dropping the state between steps must
// fail that check (the negative control); sequences interleaved on one batch
// of streams, each started by reset(row), get their own answers; getState and
// setState replay a stream; what cannot stream is refused with its reason.
//
// Each backend runs in a process of its own (tfjs-node takes over every tfjs
// in its process): this file re-runs itself with STREAM_BACKEND set.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('child_process');
const { seededRandom } = require('./helpers');

const STEPS = 7;
const FEATURES = 3;
const UNITS = 4;
const VOCAB = 9;
const ATOL = 1e-5;
// which ops the streams step on (stream.js's streamOpsFor): each run of this
// file's child process sets it ('tensor': TensorFlow's or tfjs's ops; 'array':
// array_ops.js's)
const OPS = process.env.STREAM_OPS || 'tensor';

// name -> (layers, tf) => the layers of a Sequential; inputs have a free time
// axis, so that the reference can run on every prefix.
const CASES = {
  'GRU reset before, hard sigmoid, sequences -> Dense': ({ GRU }, tf) => [
    new GRU({ units: UNITS, returnSequences: true, inputShape: [null, FEATURES] }),
    tf.layers.dense({ units: 2 }),
  ],
  'GRU reset after, sigmoid, last output -> Dense softmax': ({ GRU }, tf) => [
    new GRU({
      units: UNITS,
      resetAfter: true,
      recurrentActivation: 'sigmoid',
      inputShape: [null, FEATURES],
    }),
    tf.layers.dense({ units: 3, activation: 'softmax' }),
  ],
  'LSTM sequences -> LSTM Keras defaults -> Dense (stacked)': ({ LSTM }, tf) => [
    new LSTM({ units: UNITS, returnSequences: true, inputShape: [null, FEATURES] }),
    new LSTM({ units: UNITS, recurrentActivation: 'sigmoid' }),
    tf.layers.dense({ units: 1 }),
  ],
  'SimpleRNN sequences -> GRU reset after, sequences': ({ GRU }, tf) => [
    tf.layers.simpleRNN({ units: UNITS, returnSequences: true, inputShape: [null, FEATURES] }),
    new GRU({ units: UNITS, resetAfter: true, returnSequences: true }),
  ],
  'SimpleRNN last output -> Dropout -> LayerNormalization -> Activation (per-step heads)': (
    _,
    tf,
  ) => [
    tf.layers.simpleRNN({ units: UNITS, inputShape: [null, FEATURES] }),
    tf.layers.dropout({ rate: 0.5 }),
    tf.layers.layerNormalization(),
    tf.layers.activation({ activation: 'softmax' }),
  ],
  'Embedding mask_zero -> GRU sequences -> Dense (token ids, padded)': ({ GRU }, tf) => [
    tf.layers.embedding({
      inputDim: VOCAB,
      outputDim: FEATURES,
      maskZero: true,
      inputShape: [null],
    }),
    new GRU({ units: UNITS, resetAfter: true, returnSequences: true }),
    tf.layers.dense({ units: 2 }),
  ],
};

function buildModel(tf, layers, makeLayers, rand) {
  const model = tf.sequential({ layers: makeLayers(layers, tf) });
  const weights = model
    .getWeights()
    .map((w) => tf.randomUniform(w.shape, -1, 1, 'float32', Math.floor(rand() * 1e6)));
  model.setWeights(weights);
  tf.dispose(weights);
  return model;
}

/** Inputs for `batch` sequences of `steps`: features, or token ids with zeros (padding) among them. */
function inputsFor(tf, model, batch, steps, seed) {
  if (model.inputs[0].shape.length === 2) {
    const rand = seededRandom(seed);
    const ids = Array.from({ length: batch }, (_, b) =>
      Array.from({ length: steps }, (_, t) =>
        // padding before, within and after the real ids
        (b + t) % 4 === 0 ? 0 : 1 + Math.floor(((rand() + 1) / 2) * (VOCAB - 1)),
      ),
    );
    return tf.tensor2d(ids, [batch, steps], 'int32');
  }
  return tf.randomUniform([batch, steps, FEATURES], -1, 1, 'float32', seed);
}

/** What the whole-sequence model gives, by tfjs's stock loop: [B, T, ...] per step (prefixes for a last-output model). */
function reference(tf, model, x, returnsSequences) {
  const before = process.env.TFJS_BRIDGE_RNN_LOOP;
  process.env.TFJS_BRIDGE_RNN_LOOP = 'stock';
  try {
    if (returnsSequences) return model.predict(x);
    const steps = x.shape[1];
    const prefixes = Array.from({ length: steps }, (_, t) =>
      tf.tidy(() => model.predict(tf.slice(x, 0, [x.shape[0], t + 1]))),
    );
    const joined = tf.stack(prefixes, 1);
    tf.dispose(prefixes);
    return joined;
  } finally {
    if (before === undefined) delete process.env.TFJS_BRIDGE_RNN_LOOP;
    else process.env.TFJS_BRIDGE_RNN_LOOP = before;
  }
}

/** The streams fed x [B, T, ...] in chunks of `sizes` (summing to T): each step's output [B, T, ...]. */
function fed(tf, streams, x, sizes, { dropState = false } = {}) {
  const parts = [];
  let t = 0;
  for (const size of sizes) {
    parts.push(
      tf.tidy(() => {
        const chunk = tf.slice(x, [0, t], [x.shape[0], size]);
        // a step of one goes through step(), the rest through feed()
        return size === 1 && !dropState
          ? tf.expandDims(streams.step(tf.squeeze(chunk, [1])), 1)
          : streams.feed(chunk);
      }),
    );
    if (dropState) streams.reset();
    t += size;
  }
  const joined = tf.concat(parts, 1);
  tf.dispose(parts);
  return joined;
}

const maxAbsDiff = (tf, a, b) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

function randomSizes(rand, steps) {
  const sizes = [];
  for (let left = steps; left > 0;) {
    const size = Math.min(left, 1 + Math.floor(((rand() + 1) / 2) * 3));
    sizes.push(size);
    left -= size;
  }
  return sizes;
}

/**
 * Sequences of several lengths through 2 streams: each row takes the next
 * sequence when its current one ends (reset(row) first); the other row
 * steps on meanwhile. Returns each sequence's outputs [T_i, ...] and its own
 * whole-sequence reference.
 */
function interleaved(tf, model, openStreams, returnsSequences) {
  const lengths = [5, 2, 7, 3, 4];
  const sequences = lengths.map((n, i) => inputsFor(tf, model, 1, n, 100 + i));
  const streams = openStreams(tf, model, { batch: 2, ops: OPS });
  const rows = [null, null]; // {seq, t, outputs}
  let next = 0;
  const done = [];
  try {
    while (done.length < sequences.length) {
      rows.forEach((row, r) => {
        if (row === null && next < sequences.length) {
          streams.reset([r]);
          rows[r] = { seq: next++, t: 0, outputs: [] };
        }
      });
      if (rows.every((row) => row === null)) break;
      const step = rows.map((row) =>
        row === null
          ? tf.zerosLike(tf.slice(sequences[0], [0, 0], [1, 1]))
          : tf.slice(sequences[row.seq], [0, row.t], [1, 1]),
      );
      const x = tf.squeeze(tf.concat(step, 0), [1]);
      const y = streams.step(x);
      tf.dispose([...step, x]);
      rows.forEach((row, r) => {
        if (row === null) return;
        row.outputs.push(tf.slice(y, r, 1));
        row.t += 1;
        if (row.t === lengths[row.seq]) {
          done.push({ seq: row.seq, got: tf.stack(row.outputs, 1) });
          tf.dispose(row.outputs);
          rows[r] = null;
        }
      });
      y.dispose();
    }
  } finally {
    streams.dispose();
  }
  return Math.max(
    ...done.map(({ seq, got }) => {
      const want = reference(tf, model, sequences[seq], returnsSequences);
      const diff = maxAbsDiff(tf, got, want);
      tf.dispose([got, want]);
      return diff;
    }),
  );
}

/** Every case on one backend: the figures the tests judge. */
async function streamFigures(backend) {
  const { loadBackend } = require('../lib/runtime/backends');
  const { installKerasLayers } = require('../lib/layers');
  const { openStreams, streamRefusal, streamOpsFor } = require('../lib/layers/stream');
  const tf = await loadBackend(backend);
  const layers = installKerasLayers(tf);
  const results = {};
  for (const [name, makeLayers] of Object.entries(CASES)) {
    const rand = seededRandom(name.length);
    const model = buildModel(tf, layers, makeLayers, rand);
    const x = inputsFor(tf, model, 3, STEPS, 11);
    let streams;
    try {
      streams = openStreams(tf, model, { batch: 3, ops: OPS });
    } catch (err) {
      // a layer with no array step: refused when asked for by name ('auto' keeps it on tensors)
      results[name] = {
        refused: err.message,
        auto: openStreams(tf, model, { batch: 3 }).opsWhy,
      };
      x.dispose();
      continue;
    }
    const { returnsSequences } = streams;
    const want = reference(tf, model, x, returnsSequences);
    const ones = new Array(STEPS).fill(1);
    const byStep = fed(tf, streams, x, ones);
    streams.reset();
    const byChunks = fed(tf, streams, x, randomSizes(rand, STEPS));
    streams.reset();
    const whole = fed(tf, streams, x, [STEPS]);
    streams.reset();
    const dropped = fed(tf, streams, x, ones, { dropState: true });
    // getState after 3 steps, 4 more, then setState and the same 4 again
    streams.reset();
    tf.dispose(fed(tf, streams, x.slice(0, [3, 3]), [3]));
    const saved = streams.getState();
    const rest = tf.slice(x, [0, 3], [3, STEPS - 3]);
    const first = fed(tf, streams, rest, [STEPS - 3]);
    streams.setState(saved);
    const replayed = fed(tf, streams, rest, [1, 1, 2]);
    const tensorsBefore = tf.memory().numTensors;
    tf.dispose(fed(tf, streams, x, ones));
    results[name] = {
      ops: streams.ops,
      returnsSequences,
      shape: byStep.shape,
      wantShape: want.shape,
      byStep: maxAbsDiff(tf, byStep, want),
      byChunks: maxAbsDiff(tf, byChunks, want),
      whole: maxAbsDiff(tf, whole, want),
      dropped: maxAbsDiff(tf, dropped, want),
      replayed: maxAbsDiff(tf, first, replayed),
      leaked: tf.memory().numTensors - tensorsBefore,
      interleaved: interleaved(tf, model, openStreams, returnsSequences),
    };
    streams.dispose();
    tf.dispose([x, want, byStep, byChunks, whole, dropped, first, replayed, rest, ...saved.flat()]);
  }
  const refusals = {
    bidirectional: [
      new layers.Bidirectional({
        layer: new layers.GRU({ units: UNITS }),
        inputShape: [null, FEATURES],
      }),
    ],
    backwards: [new layers.LSTM({ units: UNITS, goBackwards: true, inputShape: [null, FEATURES] })],
    flatten: [
      new layers.GRU({ units: UNITS, returnSequences: true, inputShape: [STEPS, FEATURES] }),
      tf.layers.flatten(),
    ],
    softmaxOverTime: [
      new layers.GRU({ units: UNITS, returnSequences: true, inputShape: [STEPS, FEATURES] }),
      tf.layers.softmax({ axis: 1 }),
    ],
    after: [
      new layers.GRU({ units: UNITS, inputShape: [null, FEATURES] }),
      tf.layers.repeatVector({ n: 2 }),
    ],
  };
  results.refusals = Object.fromEntries(
    Object.entries(refusals).map(([key, list]) => {
      const model = tf.sequential({ layers: list });
      let thrown = null;
      try {
        openStreams(tf, model, { batch: 1 });
      } catch (err) {
        thrown = err.message;
      }
      return [key, { refusal: streamRefusal(model), thrown }];
    }),
  );
  const gru = buildModel(
    tf,
    layers,
    CASES['GRU reset after, sigmoid, last output -> Dense softmax'],
    seededRandom(1),
  );
  const wide = tf.sequential({
    layers: [new layers.GRU({ units: 64, resetAfter: true, inputShape: [null, 28] })],
  });
  results.choice = {
    small: [1, 256].map((batch) => streamOpsFor(tf, gru, batch)),
    wide: [1, 14, 15, 256].map((batch) => streamOpsFor(tf, wide, batch)),
  };
  return { backend: tf.getBackend(), results };
}

/** The checks, as subtests of `t`, on one backend's figures. */
async function judge(t, { backend, results }, ops) {
  for (const name of Object.keys(CASES)) {
    const r = results[name];
    if (r.refused) {
      await t.test(`${name}: no array step, refused by name, TensorFlow's ops by default`, () => {
        assert.equal(ops, 'array');
        assert.match(
          r.refused,
          /^streams: no array ops for this model: layer .* has no array step$/,
        );
        assert.match(r.auto, /has no array step/);
      });
      continue;
    }
    await t.test(`${name}: stepped on the ops asked for`, () => {
      const want = ops === 'array' ? 'array' : backend === 'tensorflow' ? 'direct' : 'tfjs';
      assert.equal(r.ops, want);
    });
    await t.test(`${name}: step by step, in chunks, whole, as the model computes`, () => {
      assert.deepEqual(r.shape, r.wantShape);
      assert.ok(r.byStep <= ATOL, `step by step: max |diff| ${r.byStep}`);
      assert.ok(r.byChunks <= ATOL, `random chunks: max |diff| ${r.byChunks}`);
      assert.ok(r.whole <= ATOL, `one chunk: max |diff| ${r.whole}`);
    });
    await t.test(`${name}: a stream that drops its state fails the check`, () => {
      assert.ok(r.dropped > 100 * ATOL, `dropping the state changed the outputs by ${r.dropped}`);
    });
    await t.test(`${name}: interleaved sequences on 2 streams each get their own answer`, () => {
      assert.ok(r.interleaved <= ATOL, `max |diff| ${r.interleaved}`);
    });
    await t.test(`${name}: setState replays; no tensor leaks`, () => {
      assert.ok(r.replayed <= ATOL, `replayed: max |diff| ${r.replayed}`);
      assert.equal(r.leaked, 0);
    });
  }
  await t.test(`what cannot stream is refused with its reason (${backend})`, () => {
    const { bidirectional, backwards, flatten, after, softmaxOverTime } = results.refusals;
    assert.match(bidirectional.refusal, /Bidirectional.*backward direction/);
    assert.equal(bidirectional.thrown, `cannot stream: ${bidirectional.refusal}`);
    assert.match(backwards.refusal, /go_backwards/);
    assert.match(flatten.refusal, /Flatten\) is not known to act on each step alone/);
    assert.match(after.refusal, /RepeatVector/);
    assert.match(softmaxOverTime.refusal, /Softmax\) acts along axis 1, not the features alone/);
  });
}

if (process.env.STREAM_BACKEND) {
  streamFigures(process.env.STREAM_BACKEND).then((figures) =>
    process.stdout.write(JSON.stringify(figures)),
  );
} else {
  const run = (backend, ops, env = {}) =>
    JSON.parse(
      execFileSync(process.execPath, [__filename], {
        env: { ...process.env, ...env, STREAM_BACKEND: backend, STREAM_OPS: ops },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
  for (const [backend, ops] of [
    ['tensorflow', 'tensor'],
    ['tensorflow', 'array'],
    ['cpu', 'tensor'],
    ['wasm', 'tensor'],
  ]) {
    test(`streams compute what the whole model computes (${backend} backend, ${ops} ops)`, async (t) => {
      const figures = run(backend, ops);
      assert.equal(figures.backend, backend);
      await judge(t, figures, ops);
    });
  }

  test('the crossover: array ops for few multiply-adds a step on tfjs-node, else TensorFlow ops', () => {
    const { small, wide } = run('tensorflow', 'tensor').results.choice;
    // GRU(4): even 256 rows are few multiply-adds
    assert.deepEqual(
      small.map((c) => c.ops),
      ['array', 'array'],
    );
    assert.deepEqual(
      wide.map((c) => c.ops),
      ['array', 'array', 'direct', 'direct'],
    );
    assert.equal(wide[2].why, '264960 multiply-adds a step > 250000'); // 15 x (28 + 64) x 192
    const cpu = run('cpu', 'tensor').results.choice;
    assert.deepEqual(
      cpu.small.map((c) => [c.ops, c.why]),
      [
        ['tfjs', 'array ops run on tfjs-node only'],
        ['tfjs', 'array ops run on tfjs-node only'],
      ],
    );
  });

  // the negative control: a wrong array op (each product's last term
  // dropped) must fail the same checks, so the array ops are run and judged
  test('a wrong array op (TFJS_BRIDGE_ARRAY_OPS=off-by-one) fails the check', () => {
    const { results } = run('tensorflow', 'array', { TFJS_BRIDGE_ARRAY_OPS: 'off-by-one' });
    const judged = Object.keys(CASES).filter((name) => !results[name].refused);
    assert.ok(judged.length >= 5);
    for (const name of judged) {
      assert.equal(results[name].ops, 'array');
      assert.ok(results[name].byStep > 100 * ATOL, `${name}: off by ${results[name].byStep}`);
    }
  });
}
