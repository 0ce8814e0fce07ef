'use strict';
// Node training's weight averaging against the same average computed by hand
// from the weights seen after every batch of a real fit().
const test = require('node:test');
const assert = require('node:assert/strict');
const tf = require('@tensorflow/tfjs');
const { warmupMomentum, weightAveraging } = require('../lib/layers/averaging');

test('the warm-up momentum is (1 + t) / (10 + t) until it reaches the momentum', () => {
  assert.equal(warmupMomentum(0.999, 1), 2 / 11);
  assert.equal(warmupMomentum(0.999, 90), 91 / 100);
  assert.equal(warmupMomentum(0.999, 100000), 0.999);
});

test('fit() ends holding the moving average of the weights after each batch', async () => {
  await tf.setBackend('cpu');
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'meanSquaredError' });
  const xs = tf.randomUniform([40, 3], -1, 1, 'float32', 1);
  const ys = tf.randomUniform([40, 2], -1, 1, 'float32', 2);
  const momentum = 0.9;

  const flat = () => model.trainableWeights.map((w) => Array.from(w.read().dataSync()));
  let expected = flat();
  let step = 0;
  let last;
  const recorder = {
    onBatchEnd: async () => {
      step += 1;
      const rate = warmupMomentum(momentum, step);
      last = flat();
      expected = expected.map((avg, i) => avg.map((a, j) => rate * a + (1 - rate) * last[i][j]));
    },
  };
  await model.fit(xs, ys, {
    epochs: 3,
    batchSize: 8,
    shuffle: false,
    verbose: 0,
    callbacks: [recorder, weightAveraging(tf, model, momentum)],
  });
  assert.equal(step, 15); // 5 batches x 3 epochs
  const got = flat();
  got.forEach((w, i) =>
    w.forEach((v, j) => {
      assert.ok(
        Math.abs(v - expected[i][j]) <= 1e-6,
        `weight ${i}[${j}]: ${v} vs ${expected[i][j]}`,
      );
    }),
  );
  // The average is not the last step's weights: averaging took place.
  assert.ok(got.some((w, i) => w.some((v, j) => Math.abs(v - last[i][j]) > 1e-3)));
});
