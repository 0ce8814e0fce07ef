'use strict';
// What a masked RNN given an initial state (Keras's initial_state) outputs
// before its first real step. (Which states it gets: masks.js.)
//
// At a padded step both Keras and tfjs keep the state; for the output Keras
// repeats the previous *output*, starting from zeros (backend.rnn), and
// tfjs's rnn() repeats the state. After a real step the two agree (the
// output is the state h); before one they differ when the state did not
// start at zero (fz0-078: a GRU fed another GRU's state, reading end-padded
// tokens backwards, mismatched on every padded sample). So the outputs at
// steps before a sample's first real one, in the order the layer reads them
// (reversed for go_backwards, as its outputs are), are zeroed.
// TFJS_BRIDGE_MASKED_START=stock keeps tfjs's (the tests' negative control).

/** The mask tensor [B, T] of an RNN call, if there is one. */
function callMask(kwargs) {
  const mask = kwargs ? kwargs.mask : null;
  const one = Array.isArray(mask) ? mask[0] : mask;
  return one != null && one.rank === 2 ? one : null;
}

/** Base (an RNN layer class) with Keras's outputs before the first real step. */
function withKerasMaskedStart(tf, Base) {
  class KerasMaskedStart extends Base {
    call(inputs, kwargs) {
      const out = super.call(inputs, kwargs);
      const mask = callMask(kwargs);
      const given = kwargs && kwargs.initialState != null;
      if (!given || !mask || process.env.TFJS_BRIDGE_MASKED_START === 'stock') return out;
      return tf.tidy(() => {
        const read = this.goBackwards ? tf.reverse(mask, 1) : mask;
        const started = tf.cast(tf.greater(tf.cumsum(tf.cast(read, 'float32'), 1), 0), 'float32');
        const output = Array.isArray(out) ? out[0] : out;
        const kept = this.returnSequences
          ? tf.mul(output, tf.expandDims(started, 2))
          : tf.mul(output, tf.slice(started, [0, started.shape[1] - 1], [-1, 1]));
        return Array.isArray(out) ? [kept, ...out.slice(1)] : kept;
      });
    }
  }
  KerasMaskedStart.className = Base.className;
  return KerasMaskedStart;
}

module.exports = { withKerasMaskedStart };
