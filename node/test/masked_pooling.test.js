'use strict';
// Keras's GlobalAveragePooling1D and GlobalMaxPooling1D in tfjs-layers
// (lib/layers/masked_pooling.js), against a plain-JavaScript masked mean:
// the layer alone (every padding: none, after, before, throughout), with
// keepdims and channelsFirst, in an Embedding(maskZero) model predicting and
// reloaded from its JSON, and tfjs's own layer (or TFJS_BRIDGE_MASKED_POOLING
// =stock) caught ignoring the mask.
//
// Each backend runs in a process of its own (tfjs-node takes over every tfjs
// it shares a process with): this file re-runs itself with POOLING_BACKEND set.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { execFileSync } = require('child_process');
const { seededRandom } = require('./helpers');

const STEPS = 6,
  CHANNELS = 3;
// Real steps per sample: whole, padded after, padded before, padded throughout.
const LENGTHS = [6, 4, 2, 0];
const PRE = [false, false, true, false];
const BATCH = LENGTHS.length;

/** mask[b][t]: whether step t of sample b is real. */
const MASK = LENGTHS.map((n, b) =>
  Array.from({ length: STEPS }, (_, t) => (PRE[b] ? t >= STEPS - n : t < n)),
);

/** Keras's masked mean by the definition: the real steps' sum / their count (0 / 0: NaN). */
function maskedMean(x, mask) {
  return x.map((steps, b) =>
    Array.from({ length: CHANNELS }, (_, c) => {
      let sum = 0,
        count = 0;
      steps.forEach((v, t) => {
        if (mask[b][t]) {
          sum += v[c];
          count += 1;
        }
      });
      return sum / count;
    }),
  );
}

const maxOverSteps = (x) =>
  x.map((steps) => Array.from({ length: CHANNELS }, (_, c) => Math.max(...steps.map((v) => v[c]))));

/** The largest |a - b|, NaN agreeing with NaN only (a NaN against a number is Infinity). */
function maxDiff(a, b) {
  const fa = [a].flat(Infinity),
    fb = [b].flat(Infinity);
  assert.equal(fa.length, fb.length);
  return fa.reduce((m, v, i) => {
    if (Number.isNaN(v) && Number.isNaN(fb[i])) return m;
    const d = Math.abs(v - fb[i]);
    return Math.max(m, Number.isNaN(d) ? Infinity : d);
  }, 0);
}

function layerCases(tf, { GlobalAveragePooling1D, GlobalMaxPooling1D }) {
  const rand = seededRandom(5);
  const xs = Array.from({ length: BATCH }, () =>
    Array.from({ length: STEPS }, () => Array.from({ length: CHANNELS }, () => 3 * rand())),
  );
  const x = tf.tensor3d(xs);
  const mask = tf.tensor2d(MASK, [BATCH, STEPS], 'bool');
  const expected = maskedMean(xs, MASK);
  const out = {};
  const average = new GlobalAveragePooling1D({});
  const y = average.apply(x, { mask });
  out.average = maxDiff(y.arraySync(), expected);
  out.averageShape = y.shape;
  out.nanRow = y.arraySync()[3].every(Number.isNaN);
  out.unmasked = maxDiff(average.apply(x).arraySync(), tf.mean(x, 1).arraySync());
  out.outputMask = average.computeMask(x, mask);
  const kept = new GlobalAveragePooling1D({ keepdims: true }).apply(x, { mask });
  out.keepdimsShape = kept.shape;
  out.keepdims = maxDiff(
    kept.arraySync(),
    expected.map((row) => [row]),
  );
  // channelsFirst: [batch, channels, steps], the same numbers.
  const first = new GlobalAveragePooling1D({ dataFormat: 'channelsFirst' });
  out.channelsFirst = maxDiff(
    first.apply(tf.transpose(x, [0, 2, 1]), { mask }).arraySync(),
    expected,
  );
  out.channelsFirstShape = first.computeOutputShape([null, CHANNELS, STEPS]);
  // Keras's max reads no mask: every step, padding included.
  const max = new GlobalMaxPooling1D({});
  out.max = maxDiff(max.apply(x, { mask }).arraySync(), maxOverSteps(xs));
  out.maxOutputMask = max.computeMask(x, mask);
  // The negative controls: tfjs's own layer, and ours switched to stock.
  const stock = tf.layers.globalAveragePooling1d({}).apply(x, { mask }).arraySync();
  out.stock = maxDiff(stock, expected);
  out.stockPadded = maxDiff(stock.slice(1, 3), expected.slice(1, 3)); // padded, not throughout
  process.env.TFJS_BRIDGE_MASKED_POOLING = 'stock';
  try {
    out.switchedToStock = maxDiff(average.apply(x, { mask }).arraySync(), expected);
  } finally {
    delete process.env.TFJS_BRIDGE_MASKED_POOLING;
  }
  tf.dispose([y, kept]);
  const afterApply = tf.memory().numTensors;
  average.apply(x, { mask }).dispose();
  out.leaked = tf.memory().numTensors - afterApply;
  tf.dispose([x, mask]);
  return out;
}

/** Embedding(maskZero) -> GlobalAveragePooling1D, predicted and reloaded from its JSON. */
async function textModel(tf, { GlobalAveragePooling1D }) {
  const VOCAB = 10;
  const rand = seededRandom(9);
  const model = tf.sequential();
  model.add(
    tf.layers.embedding({
      inputDim: VOCAB,
      outputDim: CHANNELS,
      maskZero: true,
      inputLength: STEPS,
    }),
  );
  model.add(new GlobalAveragePooling1D({}));
  const table = Array.from({ length: VOCAB }, () =>
    Array.from({ length: CHANNELS }, () => 2 * rand()),
  );
  model.layers[0].setWeights([tf.tensor2d(table)]);
  const ids = MASK.map((row) =>
    row.map((real) => (real ? 1 + Math.floor((VOCAB - 1) * (rand() / 2 + 0.5)) : 0)),
  );
  const embedded = ids.map((row) => row.map((id) => table[id]));
  const expected = maskedMean(embedded, MASK);
  const x = tf.tensor2d(ids, [BATCH, STEPS], 'int32');
  const reloaded = await tf.models.modelFromJSON(model.toJSON(null, false));
  reloaded.setWeights(model.getWeights());
  return {
    predict: maxDiff(model.predict(x).arraySync(), expected),
    reloaded: maxDiff(reloaded.predict(x).arraySync(), expected),
    reloadedIsOurs: reloaded.layers[1] instanceof GlobalAveragePooling1D,
  };
}

async function runBackend(backend) {
  const { loadBackend } = require('../lib/runtime/backends');
  const { installKerasLayers } = require('../lib/layers');
  const tf = await loadBackend(backend);
  const layers = installKerasLayers(tf);
  const registered = tf.serialization.SerializationMap.getMap().classNameMap;
  return {
    backend: tf.getBackend(),
    layer: layerCases(tf, layers),
    model: await textModel(tf, layers),
    registeredAreOurs:
      registered.GlobalAveragePooling1D[0] === layers.GlobalAveragePooling1D &&
      registered.GlobalMaxPooling1D[0] === layers.GlobalMaxPooling1D,
  };
}

if (process.env.POOLING_BACKEND) {
  // JSON has no Infinity (a NaN against a number): it crosses as a string.
  const inf = (_, v) => (v === Infinity ? 'Infinity' : v);
  runBackend(process.env.POOLING_BACKEND).then((out) =>
    process.stdout.write(JSON.stringify(out, inf)),
  );
} else {
  for (const backend of ['tensorflow', 'cpu', 'wasm']) {
    test(`GlobalAveragePooling1D averages the unmasked steps, as Keras (${backend} backend)`, (t) => {
      const out = JSON.parse(
        execFileSync(process.execPath, [__filename], {
          cwd: path.join(__dirname, '..', '..'),
          env: { ...process.env, POOLING_BACKEND: backend },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      assert.equal(out.backend, backend);
      assert.ok(out.registeredAreOurs, 'the classes tfjs deserialises are ours');
      const l = out.layer;
      assert.deepEqual(l.averageShape, [BATCH, CHANNELS]);
      for (const key of ['average', 'unmasked', 'keepdims', 'channelsFirst', 'max']) {
        assert.ok(l[key] <= 1e-6, `${key}: ${l[key]} from the reference`);
      }
      assert.ok(l.nanRow, 'a sample padded throughout is 0 / 0, NaN, as in Keras');
      assert.equal(l.outputMask, null);
      assert.equal(l.maxOutputMask, null);
      assert.deepEqual(l.keepdimsShape, [BATCH, 1, CHANNELS]);
      assert.deepEqual(l.channelsFirstShape, [null, CHANNELS]);
      assert.equal(l.leaked, 0, 'the layer left tensors behind');
      // The negative controls: the mask ignored is caught (the padded sample is
      // a number, not NaN: Infinity; the others differ by far more than 1e-6).
      assert.equal(l.stock, 'Infinity');
      assert.equal(l.switchedToStock, 'Infinity');
      assert.ok(l.stockPadded > 0.1, `tfjs's own layer: ${l.stockPadded}`);
      const m = out.model;
      assert.ok(m.reloadedIsOurs);
      assert.ok(m.predict <= 1e-6, `the model differs from the reference by ${m.predict}`);
      assert.ok(m.reloaded <= 1e-6, `the reloaded model differs by ${m.reloaded}`);
      t.diagnostic(`${backend}: largest |diff| ${Math.max(l.average, m.predict)}`);
    });
  }
}
