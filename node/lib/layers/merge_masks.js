'use strict';
// Keras's element-wise merges: Add, Multiply, Average, Maximum, Minimum with
// Keras's mask, the AND of their inputs' masks, null when none has one
// (tf_keras 2.19's _Merge.compute_mask, Keras 3's Merge.compute_mask); and
// Subtract, which tfjs-layers lacks ("Unknown layer: Subtract"): its two
// inputs, first minus second, as Keras.
//
// tfjs-layers 4.22's Merge.computeMask returns its first input's mask with an
// axis added in front, [1, batch, steps], never reduced (its loop also stops
// before the last mask). A masked RNN after such a merge then failed:
// "Invalid TF_Status: 3" on tfjs-node, "Operands could not be broadcast
// together with shapes 16,4 and 1,6" on the CPU backend (fz1-058,
// docs/models.md).
//
// TFJS_BRIDGE_MERGE_MASK=stock keeps tfjs's mask (the tests' negative
// control); the page bundle fixes it at build time.
//
// The classes are registered by index.js (installKerasLayers).

const { oncePerTf } = require('./per_tf');

const stockMask = () => process.env.TFJS_BRIDGE_MERGE_MASK === 'stock';

/** The element-wise merge classes for this tf, each with Keras's mask. */
const mergeLayers = oncePerTf((tf) => {
  // The stock classes are not exported by name; their instances are.
  const stock = {
    Add: tf.layers.add({}),
    Multiply: tf.layers.multiply({}),
    Average: tf.layers.average({}),
    Maximum: tf.layers.maximum({}),
    Minimum: tf.layers.minimum({}),
  };
  const withKerasMask = (Base) =>
    class extends Base {
      computeMask(inputs, mask) {
        if (stockMask() || !Array.isArray(mask)) return super.computeMask(inputs, mask);
        const given = mask.filter((m) => m != null);
        if (given.length === 0) return null;
        return tf.tidy(() =>
          given.map((m) => tf.cast(m, 'bool')).reduce((a, b) => tf.logicalAnd(a, b)),
        );
      }
    };
  const classes = {};
  for (const [name, instance] of Object.entries(stock)) {
    classes[name] = withKerasMask(instance.constructor);
  }
  // tfjs's Merge (not exported): shape checks and broadcasting, then mergeFunction.
  const Merge = Object.getPrototypeOf(stock.Add.constructor);
  class Subtract extends withKerasMask(Merge) {
    build(inputShape) {
      super.build(inputShape);
      if (inputShape.length !== 2) {
        throw new Error(`Subtract takes exactly 2 inputs, got ${inputShape.length}`);
      }
    }

    mergeFunction(inputs) {
      return tf.tidy(() => tf.sub(inputs[0], inputs[1]));
    }
  }
  Subtract.className = 'Subtract';
  classes.Subtract = Subtract;
  return classes;
});

module.exports = { mergeLayers };
