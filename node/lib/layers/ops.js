'use strict';
// The ops a recurrent step runs on, chosen per call: TensorFlow's ops called
// directly (tf_direct.js) on tfjs-node when no gradient tape is recording,
// else tfjs's own ops (any backend, differentiable). The step equations
// (cells.js) are written once against this interface.
const { directOps } = require('./tf_direct');

/** Whether a gradient tape is recording the ops run now (fit, tf.grad). */
function tapeOn(tf) {
  const { gradientDepth, kernelDepth } = tf.engine().state;
  return gradientDepth > 0 && kernelDepth === 0;
}

/** The step ops as tfjs ops: any backend, differentiable. */
function tfjsOps(tf) {
  return {
    matMul: (a, b) => tf.matMul(a, b),
    add: (a, b) => tf.add(a, b),
    sub: (a, b) => tf.sub(a, b),
    mul: (a, b) => tf.mul(a, b),
    select: (condition, a, b) => tf.where(condition, a, b),
    tanh: (v) => tf.tanh(v),
    sigmoid: (v) => tf.sigmoid(v),
    clip01: (v) => tf.clipByValue(v, 0, 1),
    split: (v, sizes) => tf.split(v, sizes, 1), // along axis 1 of [B, N]
  };
}

/** Direct TensorFlow ops where they are safe and faster, else tfjs's. */
function opsFor(tf) {
  return tf.getBackend() === 'tensorflow' && !tapeOn(tf) ? directOps(tf) : tfjsOps(tf);
}

/**
 * A layer's activation as a function of `ops`. tf-keras 2.x's hard_sigmoid
 * (tfjs's too) is clip(0.2x + 0.5, 0, 1), the same ops as tfjs's, with the
 * scalars made once per call instead of once per step.
 */
function activationOf(tf, ops, activation) {
  const name = activation.getClassName();
  if (name === 'hardSigmoid') {
    const [slope, offset] = [tf.scalar(0.2), tf.scalar(0.5)];
    return (v) => ops.clip01(ops.add(offset, ops.mul(slope, v)));
  }
  if (name === 'tanh') return ops.tanh;
  if (name === 'sigmoid') return ops.sigmoid;
  if (name === 'linear') return (v) => v;
  return (v) => activation.apply(v);
}

module.exports = { tapeOn, tfjsOps, opsFor, activationOf, directOps };
