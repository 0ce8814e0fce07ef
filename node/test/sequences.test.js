'use strict';
// The worker's half of serve's :stream (lib/runtime/streaming.js's
// sequenceTable), on tfjs-node: sequences in rows of one table, stepped in
// batches of changing make-up and order, a row reused by a new sequence once
// its first ended, each sequence answered as it would be alone (its own batch
// of streams, lib/layers/stream.js); the negative control, a table that
// writes states back into the wrong rows, fails the same check; no tensor leaks.
const test = require('node:test');
const assert = require('node:assert/strict');
const { seededRandom } = require('./helpers');

const FEATURES = 3;
const ATOL = 1e-5;
// sequence -> [row, first round, steps]; sequence 4 reuses row 0 after sequence 1 ended
const SCHEDULE = [
  [4, 0, 6],
  [0, 0, 3],
  [5, 1, 5],
  [2, 2, 4],
  [0, 4, 4],
];

async function setUp() {
  const { loadBackend } = require('../lib/runtime/backends');
  const { installKerasLayers } = require('../lib/layers');
  const tf = await loadBackend('tensorflow');
  const { GRU, LSTM } = installKerasLayers(tf);
  const model = tf.sequential({
    layers: [
      new LSTM({ units: 4, returnSequences: true, inputShape: [null, FEATURES] }),
      new GRU({ units: 5, resetAfter: true, recurrentActivation: 'sigmoid' }),
      tf.layers.dense({ units: 2 }),
    ],
  });
  const rand = seededRandom(7);
  const weights = model
    .getWeights()
    .map((w) => tf.randomUniform(w.shape, -1, 1, 'float32', Math.floor((rand() + 1) * 1e6)));
  model.setWeights(weights);
  tf.dispose(weights);
  const xs = SCHEDULE.map(([, , steps], i) =>
    tf.randomUniform([1, steps, FEATURES], -1, 1, 'float32', 100 + i),
  );
  return { tf, model, xs };
}

/** Each sequence alone: its own stream, every step's output [steps][2]. */
function alone(tf, model, xs) {
  const { openStreams } = require('../lib/layers/stream');
  return xs.map((x) => {
    const streams = openStreams(tf, model, { batch: 1 });
    const y = streams.feed(x);
    const out = y.arraySync()[0];
    tf.dispose(y);
    streams.dispose();
    return out;
  });
}

/**
 * SCHEDULE through one table, twice: per round, the live sequences' steps in
 * a rotating order. The answers of the second pass, and the tensor count
 * after each pass.
 */
function interleaved(tf, model, xs, options) {
  const { sequenceTable } = require('../lib/runtime/streaming');
  const table = sequenceTable(tf, model, 6, options);
  let got;
  const counts = [];
  for (let pass = 0; pass < 2; pass++) {
    got = xs.map(() => []);
    runSchedule(tf, table, xs, got);
    counts.push(tf.memory().numTensors);
  }
  table.dispose();
  return { got, counts };
}

function runSchedule(tf, table, xs, got) {
  for (let round = 0; round < 8; round++) {
    const live = SCHEDULE.map(([row, first, steps], i) => ({ i, row, t: round - first, steps }))
      .filter(({ t, steps }) => t >= 0 && t < steps)
      .map((s, k, all) => all[(k + round) % all.length]); // a new order each round
    if (!live.length) continue;
    const y = tf.tidy(() => {
      const x = tf.concat(
        live.map(({ i, t }) => tf.reshape(tf.slice(xs[i], [0, t], [1, 1]), [1, FEATURES])),
      );
      return table.step(
        x,
        live.map((s) => s.row),
        live.map((s) => s.t === 0),
      );
    });
    y.arraySync().forEach((row, k) => got[live[k].i].push(row));
    y.dispose();
  }
}

const worst = (got, want) =>
  Math.max(
    ...got.flatMap((seq, i) =>
      seq.flatMap((row, t) => row.map((v, j) => Math.abs(v - want[i][t][j]))),
    ),
  );

test('sequences in one table are each answered from their own row', async () => {
  const { tf, model, xs } = await setUp();
  const want = alone(tf, model, xs);
  const { got, counts } = interleaved(tf, model, xs, {});
  got.forEach((seq, i) => assert.equal(seq.length, SCHEDULE[i][2]));
  assert.ok(worst(got, want) <= ATOL, `max error ${worst(got, want)}`);
  // the first steps of two sequences differ: the check is not vacuous
  assert.ok(Math.abs(want[0][0][0] - want[1][0][0]) > 1e-3);
  // no tensor left behind by a second pass (the first cached a batch of streams per size)
  assert.equal(counts[1], counts[0], `tensors after each pass: ${counts}`);
});

test('negative control: a table that mixes up rows is caught', async () => {
  const { tf, model, xs } = await setUp();
  const want = alone(tf, model, xs);
  const { got } = interleaved(tf, model, xs, { mixRows: true });
  assert.ok(worst(got, want) > 1e-3, `max error only ${worst(got, want)}`);
});

test('a model that cannot stream is refused when the table opens', async () => {
  const { tf } = await setUp();
  const { sequenceTable } = require('../lib/runtime/streaming');
  const model = tf.sequential({
    layers: [
      tf.layers.bidirectional({
        layer: tf.layers.simpleRNN({ units: 2 }),
        inputShape: [null, FEATURES],
      }),
    ],
  });
  assert.throws(() => sequenceTable(tf, model, 2), /cannot stream: .*Bidirectional/);
});

test('chunks of steps through the table match each sequence alone', async () => {
  // sequence i fed in chunks of its own sizes, two sequences per batched call
  // when their chunks have the same length (as the service batches them)
  const { tf, model, xs } = await setUp();
  const { sequenceTable } = require('../lib/runtime/streaming');
  const want = alone(tf, model, xs);
  const sizes = [
    [2, 4],
    [1, 2],
    [3, 2],
    [2, 2],
    [1, 3],
  ]; // per SCHEDULE sequence, sums = steps
  const rows = [1, 0, 5, 2, 3];
  const run = (options) => {
    const table = sequenceTable(tf, model, 6, options);
    const got = xs.map(() => []);
    const at = xs.map(() => 0);
    for (let k = 0; k < 2; k++) {
      // group this round's chunks by length
      const byLength = new Map();
      sizes.forEach((s, i) => byLength.set(s[k], [...(byLength.get(s[k]) || []), i]));
      for (const [length, members] of byLength) {
        const y = tf.tidy(() =>
          table.feed(
            tf.concat(members.map((i) => tf.slice(xs[i], [0, at[i]], [1, length]))),
            members.map((i) => rows[i]),
            members.map(() => k === 0),
          ),
        );
        y.arraySync().forEach((outputs, m) => got[members[m]].push(...outputs));
        y.dispose();
        members.forEach((i) => (at[i] += length));
      }
    }
    table.dispose();
    return got;
  };
  const got = run({});
  got.forEach((seq, i) => assert.equal(seq.length, SCHEDULE[i][2]));
  assert.ok(worst(got, want) <= ATOL, `max error ${worst(got, want)}`);
  // the negative control: states written back into the wrong rows
  const mixed = run({ mixRows: true });
  assert.ok(worst(mixed, want) > 1e-3, `max error only ${worst(mixed, want)}`);
});
