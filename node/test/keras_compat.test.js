'use strict';
// Keras's reset-after GRU and Keras 3's hard_sigmoid in tfjs-layers
// (lib/layers/gru_reset_after.js, lib/layers/activations.js), on every backend, against
// plain-JavaScript equations; and training through the new GRU.
const test = require('node:test');
const assert = require('node:assert/strict');
const { loadBackend } = require('../lib/runtime/backends');
const { resetAfterGRU } = require('../lib/layers/gru_reset_after');
const { seededRandom, randomMatrix, sigmoid, dot, assertClose } = require('./helpers');

const BATCH = 2,
  STEPS = 5,
  FEATURES = 3,
  UNITS = 4;

/** Keras GRUCell, reset_after=True: the reset gate scales h·U_h + b_rec_h. */
function resetAfterReference(x, kernel, recurrent, bias) {
  return x.map((sequence) => {
    let h = new Array(UNITS).fill(0);
    for (const xt of sequence) {
      const xk = (g) => dot(xt, kernel, g * UNITS, UNITS).map((v, j) => v + bias[0][g * UNITS + j]);
      const hk = (g) =>
        dot(h, recurrent, g * UNITS, UNITS).map((v, j) => v + bias[1][g * UNITS + j]);
      const z = xk(0).map((v, j) => sigmoid(v + hk(0)[j]));
      const r = xk(1).map((v, j) => sigmoid(v + hk(1)[j]));
      const hh = xk(2).map((v, j) => Math.tanh(v + r[j] * hk(2)[j]));
      h = h.map((hj, j) => z[j] * hj + (1 - z[j]) * hh[j]);
    }
    return h;
  });
}

// The tensorflow backend is its own process (tfjs-node takes over every tfjs it
// shares a process with): runtime.test.js covers it through tfnode.js; here, the
// pure-JS backend, and the WASM one in a child process below.
test('reset-after GRU predict matches the Keras equations (cpu backend)', async () => {
  const tf = await loadBackend('cpu');
  const rand = seededRandom(2024);
  const kernel = randomMatrix(rand, FEATURES, 3 * UNITS);
  const recurrent = randomMatrix(rand, UNITS, 3 * UNITS);
  const bias = randomMatrix(rand, 2, 3 * UNITS);
  const x = Array.from({ length: BATCH }, () => randomMatrix(rand, STEPS, FEATURES));

  const { GRU } = resetAfterGRU(tf);
  const model = tf.sequential();
  model.add(
    new GRU({
      units: UNITS,
      resetAfter: true,
      recurrentActivation: 'sigmoid',
      inputShape: [STEPS, FEATURES],
    }),
  );
  assert.deepEqual(
    model.layers[0].getWeights().map((w) => w.shape),
    [
      [FEATURES, 3 * UNITS],
      [UNITS, 3 * UNITS],
      [2, 3 * UNITS],
    ],
  );
  model.layers[0].setWeights([tf.tensor2d(kernel), tf.tensor2d(recurrent), tf.tensor2d(bias)]);
  const got = model.predict(tf.tensor3d(x)).arraySync();
  assertClose(got, resetAfterReference(x, kernel, recurrent, bias), 1e-5);

  // The config says what it is, so a saved model reloads as the same layer.
  const config = model.layers[0].getConfig();
  assert.equal(config.resetAfter, true);
  // Registered under 'GRU': fast_rnn.js's GRU, which is this one with a faster loop.
  const registered = tf.serialization.SerializationMap.getMap().classNameMap.GRU[0];
  assert.ok(
    registered.prototype instanceof GRU,
    'the GRU tfjs deserialises extends the reset-after GRU',
  );
});

test('reset-before GRU keeps the stock tfjs behaviour', async () => {
  const tf = await loadBackend('cpu');
  const { GRU } = resetAfterGRU(tf);
  const ours = new GRU({ units: UNITS, inputShape: [STEPS, FEATURES] });
  assert.equal(ours.getConfig().resetAfter, false);
  const model = tf.sequential({ layers: [ours] });
  assert.deepEqual(model.layers[0].getWeights().map((w) => w.shape)[2], [3 * UNITS]);
});

test('the reset-after GRU trains: loss falls on a learnable task', async () => {
  const tf = await loadBackend('cpu');
  const { GRU } = resetAfterGRU(tf);
  const rand = seededRandom(7);
  const xs = randomMatrix(rand, 64, STEPS).map((row) => row.map((v) => [v]));
  const ys = xs.map((row) => [row.reduce((s, [v]) => s + v, 0) > 0 ? 1 : 0]); // sign of the sum
  const model = tf.sequential();
  model.add(
    new GRU({ units: 8, resetAfter: true, recurrentActivation: 'sigmoid', inputShape: [STEPS, 1] }),
  );
  model.add(tf.layers.dense({ units: 1, activation: 'sigmoid' }));
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'binaryCrossentropy' });
  const history = await model.fit(tf.tensor3d(xs), tf.tensor2d(ys), {
    epochs: 30,
    batchSize: 16,
    verbose: 0,
  });
  const loss = history.history.loss;
  assert.ok(loss[loss.length - 1] < 0.5 * loss[0], `loss ${loss[0]} -> ${loss[loss.length - 1]}`);
});

test("keras3_hard_sigmoid is Keras 3's relu6(x + 3) / 6, not tfjs's hardSigmoid", async () => {
  const tf = await loadBackend('cpu');
  const layer = tf.layers.dense({
    units: 1,
    activation: 'keras3HardSigmoid',
    useBias: false,
    inputShape: [1],
  });
  const model = tf.sequential({ layers: [layer] });
  layer.setWeights([tf.tensor2d([[1]])]);
  const xs = [-4, -3, -1, 0, 1, 2.5, 3, 4];
  const got = Array.from(model.predict(tf.tensor2d(xs, [xs.length, 1])).dataSync());
  const keras3 = xs.map((x) => Math.min(6, Math.max(0, x + 3)) / 6);
  got.forEach((v, i) =>
    assert.ok(Math.abs(v - keras3[i]) < 1e-7, `${xs[i]}: ${v} vs ${keras3[i]}`),
  );
  assert.ok(
    Math.abs(got[4] - 0.7) > 0.03,
    'at x=1 tfjs hardSigmoid gives 0.7; Keras 3 gives 0.667',
  );
});

test('the WASM backend runs the reset-after GRU too', () => {
  const { execFileSync } = require('child_process');
  const script = `
    const { loadBackend } = require('./node/lib/runtime/backends');
    const { resetAfterGRU } = require('./node/lib/layers/gru_reset_after');
    loadBackend('wasm').then((tf) => {
      const { GRU } = resetAfterGRU(tf);
      const m = tf.sequential({ layers: [new GRU({ units: 3, resetAfter: true, inputShape: [4, 2] })] });
      const y = m.predict(tf.ones([2, 4, 2]));
      process.stdout.write(JSON.stringify({ backend: tf.getBackend(), shape: y.shape, finite: y.dataSync().every(Number.isFinite) }));
    });`;
  const out = JSON.parse(
    execFileSync(process.execPath, ['-e', script], {
      cwd: require('path').join(__dirname, '..', '..'),
    }),
  );
  assert.deepEqual(out, { backend: 'wasm', shape: [2, 3], finite: true });
});
