'use strict';
// verify's prefix check of an ill-conditioned model runs the layers model on
// the first k steps: models.js's freeTimeAxis frees the time axis of a
// model.json's topology, so the same layers and weights take any length.
// Checked on a real model: freed, it gives on 3 steps (within rounding) what
// the model as saved gives on the first 3 of its 5 (a GRU is causal); as saved, it
// refuses 3 steps (why freeing is needed at all).
const test = require('node:test');
const assert = require('node:assert/strict');
const { tf } = require('../lib/runtime/tfnode');
const { freeTimeAxis } = require('../lib/runtime/models');
const { seededRandom } = require('./helpers');

test('freeTimeAxis frees the time axis of every input shape, nothing else', () => {
  const topology = {
    class_name: 'Sequential',
    config: {
      layers: [
        { class_name: 'InputLayer', config: { batch_input_shape: [null, 40, 3] } },
        { class_name: 'Dense', config: { units: 2, batch_input_shape: [null, 8] } },
        { class_name: 'InputLayer', config: { batch_shape: [null, 40, 28, 1] } },
      ],
    },
  };
  const freed = freeTimeAxis(topology);
  const layers = freed.config.layers.map((l) => l.config);
  assert.deepEqual(layers[0].batch_input_shape, [null, null, 3]);
  assert.deepEqual(layers[1].batch_input_shape, [null, 8]); // no time axis: kept
  assert.deepEqual(layers[2].batch_shape, [null, null, 28, 1]);
  assert.equal(layers[1].units, 2);
  assert.deepEqual(topology.config.layers[0].config.batch_input_shape, [null, 40, 3]); // a copy
});

test('a layers model with its time axis freed runs a prefix as the whole model does', async () => {
  const rand = seededRandom(5);
  const model = tf.sequential({
    layers: [
      tf.layers.gru({ units: 4, returnSequences: true, inputShape: [5, 3] }),
      tf.layers.dense({ units: 2 }),
    ],
  });
  let artifacts;
  await model.save(
    tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: {} })),
  );
  const x = tf.tensor3d(
    Array.from({ length: 2 * 5 * 3 }, () => 2 * rand() - 1),
    [2, 5, 3],
  );
  const prefix = tf.slice(x, [0, 0, 0], [2, 3, 3]);
  const freed = await tf.loadLayersModel(
    tf.io.fromMemory({ ...artifacts, modelTopology: freeTimeAxis(artifacts.modelTopology) }),
  );
  const whole = tf.slice(model.predict(x), [0, 0, 0], [2, 3, 2]);
  const short = freed.predict(prefix);
  assert.deepEqual(short.shape, [2, 3, 2]);
  // the same weights and arithmetic; a shorter loop may round once differently
  assert.ok((await tf.max(tf.abs(tf.sub(short, whole))).data())[0] < 1e-6);
  // negative control: the model as saved refuses 3 steps
  const saved = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  assert.throws(() => saved.predict(prefix), /expected .* to have shape \[null,5,3\]/);
});
