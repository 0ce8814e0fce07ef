'use strict';
// Keras's Attention in tfjs-layers (lib/layers/attention.js): a case worked
// by hand, then the layer against a plain-JavaScript attention written from
// tf_keras's definition (dot and concat scores, scale, value mask, causal
// mask, query mask, a separate key, the scores returned), in a model built
// with the call arguments in its JSON, reloaded from it and predicted. The
// negative control: TFJS_BRIDGE_ATTENTION=unmasked (the value and causal
// masks dropped) must differ from the reference.
//
// Each backend runs in a process of its own (tfjs-node takes over every tfjs
// it shares a process with): this file re-runs itself with ATTENTION_BACKEND set.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { execFileSync } = require('child_process');
const { seededRandom } = require('./helpers');

const BATCH = 3,
  STEPS = 4,
  DIM = 3;
// Real steps per sample: whole, padded after 2, padded throughout.
const LENGTHS = [4, 2, 0];
const MASK = LENGTHS.map((n) => Array.from({ length: STEPS }, (_, t) => t < n));

/** tf_keras's attention by its definition, for one sample (plain numbers). */
function referenceAttention(q, v, k, { qMask, vMask, causal, mode, scale = 1, concatWeight = 1 }) {
  const scores = q.map((qi, i) =>
    k.map((kj, j) => {
      let s =
        mode === 'dot'
          ? scale * qi.reduce((sum, x, d) => sum + x * kj[d], 0)
          : concatWeight * qi.reduce((sum, x, d) => sum + Math.tanh(scale * (x + kj[d])), 0);
      s = Math.fround(s);
      const kept = (!vMask || vMask[j]) && (!causal || j <= i);
      return kept ? s : Math.fround(s - 1e9); // Keras subtracts 1e9, in float32
    }),
  );
  const weights = scores.map((row) => {
    const top = Math.max(...row);
    const e = row.map((s) => Math.exp(s - top));
    const total = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / total);
  });
  return weights.map((w, i) =>
    v[0].map((_, d) => (qMask && !qMask[i] ? 0 : w.reduce((sum, wj, j) => sum + wj * v[j][d], 0))),
  );
}

/** The largest |a - b| over nested arrays. */
function maxDiff(a, b) {
  const fa = [a].flat(Infinity),
    fb = [b].flat(Infinity);
  assert.equal(fa.length, fb.length);
  return fa.reduce((m, x, i) => Math.max(m, Math.abs(x - fb[i])), 0);
}

/** q = [1, 0] against keys e1, e2 (values the same): the softmax of [1, 0], by hand. */
function byHand(tf, { Attention }) {
  const e = Math.E;
  const q = tf.tensor3d([[[1, 0]]]);
  const v = tf.tensor3d([
    [
      [1, 0],
      [0, 1],
    ],
  ]);
  const layer = new Attention({});
  const plain = layer.apply([q, v]).arraySync()[0][0];
  // The second key masked: all the weight on the first; both masked: Keras's
  // -1e9 on each leaves the scores equal in float32, so half and half.
  const mask = (row) => [tf.tensor2d([[true]], [1, 1], 'bool'), tf.tensor2d([row], [1, 2], 'bool')];
  const firstOnly = layer.apply([q, v], { mask: mask([true, false]) }).arraySync()[0][0];
  const none = layer.apply([q, v], { mask: mask([false, false]) }).arraySync()[0][0];
  const queryOff = layer
    .apply([q, v], { mask: [tf.tensor2d([[false]], [1, 1], 'bool'), null] })
    .arraySync()[0][0];
  return {
    plain: maxDiff(plain, [e / (1 + e), 1 / (1 + e)]),
    firstOnly: maxDiff(firstOnly, [1, 0]),
    none: maxDiff(none, [0.5, 0.5]),
    queryOff: maxDiff(queryOff, [0, 0]),
  };
}

/**
 * Input -> Dense(tanh) -> Attention([h, h(, key)], mask from an Embedding),
 * built with the call arguments, predicted and reloaded from its JSON.
 */
async function modelCase(tf, { Attention }, { mode, useScale, causal, withKey }) {
  const rand = seededRandom(mode === 'dot' ? 3 : 4);
  const ids = tf.input({ shape: [STEPS], dtype: 'int32' });
  const embedded = tf.layers
    .embedding({ inputDim: 9, outputDim: DIM, maskZero: true, name: 'embedding' })
    .apply(ids);
  const h = tf.layers.dense({ units: DIM, activation: 'tanh', name: 'dense' }).apply(embedded);
  const attention = new Attention({ useScale, scoreMode: mode, name: 'attention' });
  const inputs = withKey ? [h, h, embedded] : [h, h];
  const [out, scores] = attention.apply(inputs, {
    useCausalMask: causal,
    returnAttentionScores: true,
  });
  const model = tf.model({ inputs: ids, outputs: [out, scores] });
  const scale = useScale ? 0.5 + rand() : 1,
    concatWeight = mode === 'concat' ? 1.5 + rand() : 1;
  // The attention's scalars by the names the converter writes; the rest seeded.
  const named = model.weights.map((w) => w.originalName);
  const weights = model.weights.map((w) => {
    if (w.originalName === 'attention/scale') return tf.scalar(scale);
    if (w.originalName === 'attention/concat_score_weight') return tf.scalar(concatWeight);
    return tf.tensor(Array.from({ length: w.shape.reduce((a, b) => a * b, 1) }, rand), w.shape);
  });
  model.setWeights(weights);
  const idRows = MASK.map((row) =>
    row.map((real) => (real ? 1 + Math.floor(8 * (rand() / 2 + 0.5)) : 0)),
  );
  const x = tf.tensor2d(idRows, [BATCH, STEPS], 'int32');
  const table = weights[named.findIndex((n) => n.endsWith('embeddings'))].arraySync();
  const [kernel, bias] = ['kernel', 'bias'].map((s) =>
    weights[named.findIndex((n) => n === `dense/${s}`)].arraySync(),
  );
  const expected = idRows.map((row, b) => {
    const emb = row.map((id) => table[id]);
    const hs = emb.map((e) =>
      bias.map((bj, j) => Math.tanh(e.reduce((s, x, i) => s + x * kernel[i][j], bj))),
    );
    const options = { qMask: MASK[b], vMask: MASK[b], causal, mode, scale, concatWeight };
    return referenceAttention(hs, hs, withKey ? emb : hs, options);
  });
  const predicted = model.predict(x, { batchSize: BATCH });
  const reloaded = await tf.models.modelFromJSON(model.toJSON(null, false));
  reloaded.setWeights(model.getWeights());
  const again = reloaded.predict(x, { batchSize: BATCH });
  process.env.TFJS_BRIDGE_ATTENTION = 'unmasked';
  let unmasked;
  try {
    unmasked = model.predict(x, { batchSize: BATCH })[0].arraySync();
  } finally {
    delete process.env.TFJS_BRIDGE_ATTENTION;
  }
  return {
    predict: maxDiff(predicted[0].arraySync(), expected),
    reloaded: maxDiff(again[0].arraySync(), expected),
    scoresShape: predicted[1].shape,
    scoresSumToOne: maxDiff(
      tf.sum(predicted[1], -1).arraySync(),
      Array.from({ length: BATCH }, () => Array(STEPS).fill(1)),
    ),
    reloadedIsOurs: reloaded.getLayer('attention') instanceof Attention,
    reloadedCausal: reloaded.getLayer('attention').callOptions.causal,
    unmasked: maxDiff(unmasked, expected),
  };
}

/** Query and value from different tensors, with a mask: refused, not guessed. */
function crossAttentionRefused(tf, { Attention }) {
  const ids = tf.input({ shape: [STEPS], dtype: 'int32' });
  const embedded = tf.layers.embedding({ inputDim: 9, outputDim: DIM, maskZero: true }).apply(ids);
  const other = tf.layers.dense({ units: DIM }).apply(embedded);
  const model = tf.model({ inputs: ids, outputs: new Attention({}).apply([embedded, other]) });
  try {
    model.predict(tf.ones([1, STEPS], 'int32'));
    return 'ran';
  } catch (err) {
    return err.message;
  }
}

async function runBackend(backend) {
  const { loadBackend } = require('../lib/runtime/backends');
  const { installKerasLayers } = require('../lib/layers');
  const tf = await loadBackend(backend);
  const layers = installKerasLayers(tf);
  const registered = tf.serialization.SerializationMap.getMap().classNameMap;
  const cases = {};
  for (const [name, options] of Object.entries(CASES)) {
    cases[name] = await modelCase(tf, layers, options);
  }
  return {
    backend: tf.getBackend(),
    byHand: byHand(tf, layers),
    cases,
    refused: crossAttentionRefused(tf, layers),
    registeredIsOurs: registered.Attention[0] === layers.Attention,
  };
}

const CASES = {
  dot: { mode: 'dot', useScale: false, causal: false, withKey: false },
  dotScaledCausal: { mode: 'dot', useScale: true, causal: true, withKey: false },
  concatKey: { mode: 'concat', useScale: false, causal: false, withKey: true },
  concatScaledCausal: { mode: 'concat', useScale: true, causal: true, withKey: false },
};

if (process.env.ATTENTION_BACKEND) {
  runBackend(process.env.ATTENTION_BACKEND).then((out) =>
    process.stdout.write(JSON.stringify(out)),
  );
} else {
  for (const backend of ['tensorflow', 'cpu']) {
    test(`Attention computes Keras's attention (${backend} backend)`, (t) => {
      const out = JSON.parse(
        execFileSync(process.execPath, [__filename], {
          cwd: path.join(__dirname, '..', '..'),
          env: { ...process.env, ATTENTION_BACKEND: backend },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      assert.equal(out.backend, backend);
      assert.ok(out.registeredIsOurs, 'the class tfjs deserialises is ours');
      for (const [key, diff] of Object.entries(out.byHand)) {
        assert.ok(diff <= 1e-6, `by hand, ${key}: ${diff}`);
      }
      for (const [name, c] of Object.entries(out.cases)) {
        assert.ok(c.predict <= 1e-5, `${name}: predict differs from the reference by ${c.predict}`);
        assert.ok(c.reloaded <= 1e-5, `${name}: reloaded differs by ${c.reloaded}`);
        assert.ok(c.reloadedIsOurs, name);
        assert.equal(c.reloadedCausal, CASES[name].causal, `${name}: causal kept in the JSON`);
        assert.deepEqual(c.scoresShape, [BATCH, STEPS, STEPS]);
        assert.ok(c.scoresSumToOne <= 1e-5, `${name}: weights sum to ${c.scoresSumToOne}`);
        // The negative control: the masks dropped differ from the reference.
        assert.ok(c.unmasked > 1e-3, `${name}: unmasked differs only by ${c.unmasked}`);
      }
      assert.match(out.refused, /^tfjs-bridge cannot run layer Attention .*first input's mask/);
      const worst = Math.max(...Object.values(out.cases).map((c) => c.predict));
      t.diagnostic(`${backend}: largest |diff| from the reference ${worst}`);
    });
  }
}
