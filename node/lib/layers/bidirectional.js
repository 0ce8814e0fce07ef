'use strict';
// Keras's Bidirectional with both directions in one loop. When both are the
// fast loop's GRUs or LSTMs (inference on tfjs-node: loop_policy.js), the
// states are [B, 2U], forward then backward, gate columns side by side and
// the recurrent kernel block-diagonal (loop_weights.js), so each step's ops
// serve both directions: half the dispatches of running them one after the
// other (rnn_stack at batch 1: 7.6 -> 4.9 ms). The output is what tfjs's
// Bidirectional.call makes of the two layers'; anything else goes to it.
//
// A masked return_sequences Bidirectional is Keras's, not tfjs's: Keras sets
// zero_output_for_mask on both layers, so their masked steps give 0, where
// tfjs-layers repeats the last output (fz1-007). Each layer then runs its own
// loop (not the one-loop path below), its outputs zeroed before the merge.
// TFJS_BRIDGE_MASKED_BIDIRECTIONAL=stock keeps tfjs's (the tests' negative control).
const { bothDirectionsInput, maskOf } = require('./loop_policy');
const { cachedLoopWeights, dropPreparedWeights } = require('./loop_weights');
const { runLoop } = require('./fast_loop');

const MERGES = {
  concat: (tf, a, b) => tf.concat([a, b], -1),
  sum: (tf, a, b) => tf.add(a, b),
  ave: (tf, a, b) => tf.mul(0.5, tf.add(a, b)),
  mul: (tf, a, b) => tf.mul(a, b),
};

/** Both directions' output, merged, from one loop (and one mask, if any). */
function bidirectionalLoop(tf, bidirectional, kind, x, mask) {
  const { forwardLayer: fwd, backwardLayer: bwd, mergeMode } = bidirectional;
  const layers = [fwd, bwd];
  const weights = cachedLoopWeights(tf, bidirectional, layers, kind);
  const { states } = runLoop(tf, layers, weights, x, kind, mask);
  const merge = (joined, timeAxis) => {
    const [forward, backward] = tf.split(joined, 2, -1);
    // the backward layer's sequence runs back in time: Bidirectional reverses it
    const aligned = timeAxis === null ? backward : tf.reverse(backward, timeAxis);
    return MERGES[mergeMode](tf, forward, aligned);
  };
  if (!fwd.returnSequences) {
    const last = states[states.length - 1];
    return mergeMode === 'concat' ? last : merge(last, null);
  }
  return tf.transpose(merge(tf.stack(states, 0), 0), [1, 0, 2]);
}

/**
 * The [B, T, 1] mask Keras zeroes one layer's outputs with, in the order the
 * layer ran its steps (its raw output's order). Keras's loop masks each step
 * it runs; its unrolled loop (backend.rnn, tf-keras 2.19 and Keras 3) zeroes
 * the stacked outputs with the mask in time order, so a go_backwards layer
 * has its mirrored steps zeroed there.
 */
function zeroingMask(tf, layer, mask) {
  const m = tf.expandDims(tf.cast(mask, 'float32'), -1);
  return layer.goBackwards && !layer.unroll ? tf.reverse(m, 1) : m;
}

/** Stock Bidirectional.call, each layer's masked steps zeroed as in Keras, then merged. */
function zeroedMaskedSteps(tf, bidirectional, callStock, mask) {
  const { forwardLayer: fwd, backwardLayer: bwd, mergeMode } = bidirectional;
  bidirectional.mergeMode = null; // both outputs apart, the backward one back in time order
  let outputs;
  try {
    outputs = callStock();
  } finally {
    bidirectional.mergeMode = mergeMode;
  }
  const [y, yRev, ...states] = outputs;
  const forward = tf.mul(y, zeroingMask(tf, fwd, mask));
  const backward = tf.mul(yRev, tf.reverse(zeroingMask(tf, bwd, mask), 1));
  const merged =
    mergeMode == null ? [forward, backward] : [MERGES[mergeMode](tf, forward, backward)];
  return bidirectional.returnState || mergeMode == null ? [...merged, ...states] : merged[0];
}

/** The Bidirectional class for this tf, over the fast loop's GRU and LSTM classes. */
function bidirectionalLayer(tf, { GRU, LSTM }) {
  const Stock = tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 1 }) }).constructor;

  class Bidirectional extends Stock {
    call(inputs, kwargs = {}) {
      const kind =
        this.forwardLayer instanceof GRU
          ? 'GRU'
          : this.forwardLayer instanceof LSTM
            ? 'LSTM'
            : null;
      const mask = maskOf(kwargs);
      if (
        mask &&
        this.returnSequences &&
        process.env.TFJS_BRIDGE_MASKED_BIDIRECTIONAL !== 'stock'
      ) {
        return tf.tidy(() => zeroedMaskedSteps(tf, this, () => super.call(inputs, kwargs), mask));
      }
      const x = kind && bothDirectionsInput(tf, this, inputs, kwargs, MERGES);
      if (!x) return super.call(inputs, kwargs);
      return tf.tidy(() => bidirectionalLoop(tf, this, kind, x, mask));
    }

    dispose() {
      // tfjs disposes the two layers' variables, not the layers: their own
      // prepared weights (kept when they ran one by one) go here.
      [this, this.forwardLayer, this.backwardLayer].forEach((layer) =>
        dropPreparedWeights(tf, layer),
      );
      return super.dispose();
    }
  }
  Bidirectional.className = 'Bidirectional';
  return Bidirectional;
}

module.exports = { bidirectionalLayer };
