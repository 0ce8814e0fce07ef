'use strict';
// The Node half of the foundation: tfjs-node loads, runs on the native
// TensorFlow backend, and its GRU and LSTM compute the textbook equations
// (checked against a plain-JavaScript reference, not against tfjs itself).
const test = require('node:test');
const assert = require('node:assert/strict');
const { tf, runtimeInfo } = require('../lib/runtime/tfnode');
const { seededRandom, randomMatrix, hardSigmoid, dot, assertClose } = require('./helpers');

test('tfjs-node runs on the native TensorFlow backend', () => {
  const info = runtimeInfo();
  assert.equal(info.backend, 'tensorflow');
  assert.equal(info.tfjsNode, '4.22.0');
  assert.ok(
    info.libtensorflow.some((p) => p.endsWith('libtensorflow_cc.so.2')),
    `addon linked to ${info.libtensorflow}`,
  );
});

test('matMul gives the right numbers', () => {
  const c = tf.tidy(() =>
    tf.matMul(
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
      tf.tensor2d([
        [5, 6],
        [7, 8],
      ]),
    ),
  );
  assert.deepEqual(Array.from(c.dataSync()), [19, 22, 43, 50]);
  c.dispose();
});

const BATCH = 2,
  STEPS = 5,
  FEATURES = 3,
  UNITS = 4;

function inputs(rand) {
  return Array.from({ length: BATCH }, () => randomMatrix(rand, STEPS, FEATURES));
}

test('GRU predict matches the reset-before GRU equations (tfjs defaults)', () => {
  const rand = seededRandom(11);
  const kernel = randomMatrix(rand, FEATURES, 3 * UNITS);
  const recurrent = randomMatrix(rand, UNITS, 3 * UNITS);
  const bias = Array.from({ length: 3 * UNITS }, () => rand());
  const x = inputs(rand);

  const model = tf.sequential();
  model.add(tf.layers.gru({ units: UNITS, inputShape: [STEPS, FEATURES] }));
  model.layers[0].setWeights([tf.tensor2d(kernel), tf.tensor2d(recurrent), tf.tensor1d(bias)]);
  const got = model.predict(tf.tensor3d(x)).arraySync();

  const expected = x.map((sequence) => {
    let h = new Array(UNITS).fill(0);
    for (const xt of sequence) {
      const xk = (gate) =>
        dot(xt, kernel, gate * UNITS, UNITS).map((v, j) => v + bias[gate * UNITS + j]);
      const z = xk(0).map((v, j) => hardSigmoid(v + dot(h, recurrent, 0, UNITS)[j]));
      const r = xk(1).map((v, j) => hardSigmoid(v + dot(h, recurrent, UNITS, UNITS)[j]));
      const rh = h.map((hj, j) => r[j] * hj);
      const hh = xk(2).map((v, j) => Math.tanh(v + dot(rh, recurrent, 2 * UNITS, UNITS)[j]));
      h = h.map((hj, j) => z[j] * hj + (1 - z[j]) * hh[j]);
    }
    return h;
  });
  assertClose(got, expected, 1e-5);
});

test('LSTM predict matches the LSTM equations (tfjs defaults)', () => {
  const rand = seededRandom(95);
  const kernel = randomMatrix(rand, FEATURES, 4 * UNITS);
  const recurrent = randomMatrix(rand, UNITS, 4 * UNITS);
  const bias = Array.from({ length: 4 * UNITS }, () => rand());
  const x = inputs(rand);

  const model = tf.sequential();
  model.add(tf.layers.lstm({ units: UNITS, inputShape: [STEPS, FEATURES] }));
  model.layers[0].setWeights([tf.tensor2d(kernel), tf.tensor2d(recurrent), tf.tensor1d(bias)]);
  const got = model.predict(tf.tensor3d(x)).arraySync();

  const expected = x.map((sequence) => {
    let h = new Array(UNITS).fill(0);
    let c = new Array(UNITS).fill(0);
    for (const xt of sequence) {
      const pre = (gate) =>
        dot(xt, kernel, gate * UNITS, UNITS).map(
          (v, j) => v + dot(h, recurrent, gate * UNITS, UNITS)[j] + bias[gate * UNITS + j],
        );
      const i = pre(0).map(hardSigmoid);
      const f = pre(1).map(hardSigmoid);
      const g = pre(2).map(Math.tanh);
      const o = pre(3).map(hardSigmoid);
      c = c.map((cj, j) => f[j] * cj + i[j] * g[j]);
      h = c.map((cj, j) => o[j] * Math.tanh(cj));
    }
    return h;
  });
  assertClose(got, expected, 1e-5);
});
