'use strict';
// Keras's Attention and MultiHeadAttention in tfjs-layers
// (lib/layers/attention.js, multi_head_attention.js). Attention: a case worked
// by hand, then the layer against a plain-JavaScript attention written from
// tf_keras's definition (dot and concat scores, scale, value mask, causal
// mask, query mask, a separate key, the scores returned), in a model built
// with the call arguments in its JSON, reloaded from it and predicted. The
// negative control: TFJS_BRIDGE_ATTENTION=unmasked (the value and causal
// masks dropped) must differ from the reference. MultiHeadAttention: against
// a plain-JavaScript one (causal, masked, value_dim apart), beside an
// Attention on the same tensor, reloaded, its weight names, the same switch,
// and an attention_axes it does not compute refused.
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
/** The model's first output with the attention layers' masks dropped (the negative control's switch). */
function predictUnmasked(model, x) {
  process.env.TFJS_BRIDGE_ATTENTION = 'unmasked';
  try {
    return model.predict(x, { batchSize: BATCH })[0].arraySync();
  } finally {
    delete process.env.TFJS_BRIDGE_ATTENTION;
  }
}

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
  const unmasked = predictUnmasked(model, x);
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

/** tf_keras's MultiHeadAttention by its definition, for one sample (self-attention, masked). */
function referenceMultiHead(x, mask, w, { heads, keyDim, valueDim, causal }) {
  const project = (kernel, bias, width) =>
    x.map((xt) =>
      Array.from({ length: heads }, (_, h) =>
        Array.from({ length: width }, (_, j) =>
          xt.reduce((sum, xc, c) => sum + xc * kernel[c][h][j], bias[h][j]),
        ),
      ),
    );
  const q = project(w.query.kernel, w.query.bias, keyDim).map((qt) =>
    qt.map((qh) => qh.map((v) => v / Math.sqrt(keyDim))),
  );
  const k = project(w.key.kernel, w.key.bias, keyDim);
  const v = project(w.value.kernel, w.value.bias, valueDim);
  const steps = x.length;
  return x.map((_, t) => {
    const attended = Array.from({ length: heads }, (__, h) => {
      const scores = Array.from({ length: steps }, (___, s) => {
        const score = Math.fround(q[t][h].reduce((sum, qv, d) => sum + qv * k[s][h][d], 0));
        const kept = mask[t] && mask[s] && (!causal || s <= t);
        return kept ? score : Math.fround(score - 1e9); // tf_keras adds (1 - mask) * -1e9
      });
      const top = Math.max(...scores);
      const e = scores.map((sc) => Math.exp(sc - top));
      const total = e.reduce((a, b) => a + b, 0);
      return Array.from({ length: valueDim }, (___, d) =>
        e.reduce((sum, ej, s) => sum + (ej / total) * v[s][h][d], 0),
      );
    });
    const out = w.output.bias.length;
    return Array.from({ length: out }, (__, j) =>
      attended.reduce(
        (sum, ah, h) => sum + ah.reduce((s2, av, d) => s2 + av * w.output.kernel[h][d][j], 0),
        w.output.bias[j],
      ),
    );
  });
}

/**
 * Embedding(maskZero) -> Dense(tanh) h -> MultiHeadAttention(h, h, causal)
 * beside an Attention([h, h]) on the same h (h listed twice used to be
 * disposed by the first layer's call before the second's), reloaded too.
 */
async function multiHeadCase(tf, { MultiHeadAttention, Attention }) {
  const rand = seededRandom(6);
  const [heads, keyDim, valueDim] = [2, 3, 2];
  const ids = tf.input({ shape: [STEPS], dtype: 'int32' });
  const embedded = tf.layers
    .embedding({ inputDim: 9, outputDim: DIM, maskZero: true, name: 'embedding' })
    .apply(ids);
  const h = tf.layers.dense({ units: DIM, activation: 'tanh', name: 'dense' }).apply(embedded);
  const mha = new MultiHeadAttention({ numHeads: heads, keyDim, valueDim, name: 'mha' });
  const out = mha.apply([h, h], { useCausalMask: true });
  const beside = new Attention({ name: 'beside' }).apply([h, h]);
  const model = tf.model({ inputs: ids, outputs: [out, beside] });
  model.setWeights(
    model.weights.map((w) =>
      tf.tensor(Array.from({ length: w.shape.reduce((a, b) => a * b, 1) }, rand), w.shape),
    ),
  );
  const byName = Object.fromEntries(
    model.weights.map((w, i) => [w.originalName, model.getWeights()[i].arraySync()]),
  );
  const dense = (name) => ({
    kernel: byName[`mha/${name}/kernel`],
    bias: byName[`mha/${name}/bias`],
  });
  const weights = {
    query: dense('query'),
    key: dense('key'),
    value: dense('value'),
    output: dense('attention_output'),
  };
  const idRows = MASK.map((row) =>
    row.map((real) => (real ? 1 + Math.floor(8 * (rand() / 2 + 0.5)) : 0)),
  );
  const table = byName['embedding/embeddings'];
  const [kernel, bias] = [byName['dense/kernel'], byName['dense/bias']];
  const expected = idRows.map((row, b) => {
    const hs = row.map((id) =>
      bias.map((bj, j) => Math.tanh(table[id].reduce((s, x, i) => s + x * kernel[i][j], bj))),
    );
    return referenceMultiHead(hs, MASK[b], weights, { heads, keyDim, valueDim, causal: true });
  });
  const x = tf.tensor2d(idRows, [BATCH, STEPS], 'int32');
  const reloaded = await tf.models.modelFromJSON(model.toJSON(null, false));
  reloaded.setWeights(model.getWeights());
  let refusedAxes;
  try {
    new MultiHeadAttention({ numHeads: 1, keyDim: 2, attentionAxes: [2], name: 'axes' });
  } catch (err) {
    refusedAxes = err.message;
  }
  const unmasked = predictUnmasked(model, x);
  return {
    predict: maxDiff(model.predict(x, { batchSize: BATCH })[0].arraySync(), expected),
    reloaded: maxDiff(reloaded.predict(x, { batchSize: BATCH })[0].arraySync(), expected),
    reloadedIsOurs: reloaded.getLayer('mha') instanceof MultiHeadAttention,
    weightNames: mha.weights.map((w) => w.originalName),
    unmasked: maxDiff(unmasked, expected),
    refusedAxes,
  };
}

/**
 * A masked branch run first, then an Attention on an unmasked one: tfjs's
 * predict leaves the masked branch's mask in the arguments it passes the
 * attention; the attention must not read it.
 */
function leftoverMaskCase(tf, { Attention, GlobalAveragePooling1D }) {
  const rand = seededRandom(8);
  const ids = tf.input({ shape: [STEPS], dtype: 'int32' });
  const embedded = tf.layers.embedding({ inputDim: 9, outputDim: DIM, maskZero: true }).apply(ids);
  const pooled = new GlobalAveragePooling1D({}).apply(embedded);
  const numbers = tf.input({ shape: [STEPS, DIM] });
  const attended = new Attention({}).apply([numbers, numbers]);
  const model = tf.model({ inputs: [ids, numbers], outputs: [pooled, attended] });
  const xs = Array.from({ length: BATCH }, () =>
    Array.from({ length: STEPS }, () => Array.from({ length: DIM }, () => rand())),
  );
  const idRows = MASK.map((row) => row.map((real) => (real ? 1 : 0)));
  const [, got] = model.predict([tf.tensor2d(idRows, [BATCH, STEPS], 'int32'), tf.tensor3d(xs)]);
  const expected = xs.map((x) => referenceAttention(x, x, x, { mode: 'dot' }));
  return maxDiff(got.arraySync(), expected);
}

/** The same for an LSTM (masks.js): the numbers' branch alone, and beside a masked one. */
function leftoverMaskLstm(tf, { GlobalAveragePooling1D, LSTM }) {
  const rand = seededRandom(10);
  const ids = tf.input({ shape: [STEPS], dtype: 'int32' });
  const embedded = tf.layers.embedding({ inputDim: 9, outputDim: DIM, maskZero: true }).apply(ids);
  const pooled = new GlobalAveragePooling1D({}).apply(embedded);
  const numbers = tf.input({ shape: [STEPS, DIM] });
  const lstm = new LSTM({ units: 2, returnSequences: true });
  const alone = tf.model({ inputs: numbers, outputs: lstm.apply(numbers) });
  const beside = tf.model({ inputs: [ids, numbers], outputs: [pooled, lstm.apply(numbers)] });
  const x = tf.tensor3d(
    Array.from({ length: BATCH }, () =>
      Array.from({ length: STEPS }, () => Array.from({ length: DIM }, () => rand())),
    ),
  );
  const idRows = MASK.map((row) => row.map((real) => (real ? 1 : 0)));
  const [, got] = beside.predict([tf.tensor2d(idRows, [BATCH, STEPS], 'int32'), x]);
  return maxDiff(got.arraySync(), alone.predict(x).arraySync());
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
    multiHead: await multiHeadCase(tf, layers),
    leftoverMask: leftoverMaskCase(tf, layers),
    leftoverMaskLstm: leftoverMaskLstm(tf, layers),
    registeredIsOurs:
      registered.Attention[0] === layers.Attention &&
      registered.MultiHeadAttention[0] === layers.MultiHeadAttention,
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
      assert.match(
        out.refused,
        /^tfjs-bridge cannot run layer Attention \w+: its value is another tensor than the query and carries a mask/,
      );
      assert.ok(out.leftoverMask <= 1e-5, `an earlier layer's mask was read: ${out.leftoverMask}`);
      assert.ok(out.leftoverMaskLstm <= 1e-6, `LSTM read another's mask: ${out.leftoverMaskLstm}`);
      const m = out.multiHead;
      assert.ok(m.predict <= 1e-5, `MultiHeadAttention differs from the reference by ${m.predict}`);
      assert.ok(m.reloaded <= 1e-5, `reloaded MultiHeadAttention differs by ${m.reloaded}`);
      assert.ok(m.reloadedIsOurs);
      assert.deepEqual(
        m.weightNames,
        ['query', 'key', 'value', 'attention_output'].flatMap((d) =>
          ['kernel', 'bias'].map((w) => `mha/${d}/${w}`),
        ),
      );
      assert.ok(m.unmasked > 1e-3, `MultiHeadAttention unmasked differs only by ${m.unmasked}`);
      assert.equal(
        m.refusedAxes,
        'tfjs-bridge cannot run layer MultiHeadAttention axes: attention_axes [2]',
      );
      t.diagnostic(`${backend}: MultiHeadAttention's largest |diff| ${m.predict}`);
      const worst = Math.max(...Object.values(out.cases).map((c) => c.predict));
      t.diagnostic(`${backend}: largest |diff| from the reference ${worst}`);
    });
  }
}
