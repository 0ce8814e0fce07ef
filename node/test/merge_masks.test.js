'use strict';
// The element-wise merges (lib/layers/merge_masks.js) on tfjs-node: Keras's
// mask, the AND of the inputs' masks (worked by hand), where tfjs's own
// (TFJS_BRIDGE_MERGE_MASK=stock) gives the first mask with an axis in front;
// and Subtract, first minus second, in a model reloaded from its JSON.
const test = require('node:test');
const assert = require('node:assert/strict');
const { tf } = require('../lib/runtime/tfnode');
const { installKerasLayers } = require('../lib/layers');

const layers = installKerasLayers(tf);
const MERGES = ['Add', 'Multiply', 'Average', 'Maximum', 'Minimum', 'Subtract'];

test("each merge's mask is the AND of its inputs' masks, as Keras's", () => {
  const x = tf.ones([2, 3, 4]);
  const a = tf.tensor2d(
    [
      [1, 1, 0],
      [1, 0, 0],
    ],
    [2, 3],
    'bool',
  );
  const b = tf.tensor2d(
    [
      [1, 0, 1],
      [1, 1, 0],
    ],
    [2, 3],
    'bool',
  );
  for (const name of MERGES) {
    const layer = new layers[name]({});
    assert.deepEqual(layer.computeMask([x, x], [a, b]).arraySync(), [
      [1, 0, 0],
      [1, 0, 0],
    ]);
    assert.deepEqual(layer.computeMask([x, x], [null, b]).arraySync(), b.arraySync());
    assert.equal(layer.computeMask([x, x], [null, null]), null);
  }
  // the negative control: tfjs's own keeps the first mask, an axis in front
  process.env.TFJS_BRIDGE_MERGE_MASK = 'stock';
  try {
    const stock = new layers.Average({}).computeMask([x, x], [a, b]);
    assert.deepEqual(stock.shape, [1, 2, 3]);
  } finally {
    delete process.env.TFJS_BRIDGE_MERGE_MASK;
  }
});

test('Subtract gives its first input minus its second, and takes exactly two', async () => {
  const left = tf.input({ shape: [3], name: 'left' });
  const right = tf.input({ shape: [3], name: 'right' });
  const model = tf.model({
    inputs: [left, right],
    outputs: new layers.Subtract({}).apply([left, right]),
  });
  const reloaded = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: model.toJSON(null, false) }),
  );
  assert.equal(reloaded.layers[2].getClassName(), 'Subtract');
  const y = reloaded.predict([tf.tensor2d([[5, 1, 2]]), tf.tensor2d([[1, 4, 2]])]);
  assert.deepEqual(y.arraySync(), [[4, -3, 0]]);
  const third = tf.input({ shape: [3] });
  assert.throws(
    () => new layers.Subtract({}).apply([left, right, third]),
    /Subtract takes exactly 2 inputs, got 3/,
  );
});
