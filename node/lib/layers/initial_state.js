'use strict';
// An RNN layer given an initial state (Keras's initial_state), as Keras runs it.
//
// 1. Which initial state. tfjs-layers 4.22's predict hands every layer of a
//    run one arguments object (masks.js says the same of masks), and an RNN
//    layer called with states stores them there as `initialState`: the next
//    RNN layer of the run then started from the states another layer was
//    given (with states of its own, tfjs refuses: "When inputs is an array,
//    neither initialState or constants should be provided"). In a model's
//    run a layer's states come only with its inputs: one left in the
//    arguments is dropped, and the layer's own go into a copy.
// 2. Its output before the first real step of a masked sequence. At a padded
//    step both keep the state; for the output Keras repeats the previous
//    *output*, starting from zeros (backend.rnn), and tfjs's rnn() repeats
//    the state. After a real step the two agree (the output is the state h);
//    before one they differ when the state did not start at zero (fz0-078:
//    a GRU fed another GRU's state, reading end-padded tokens backwards,
//    mismatched on every padded sample). So the outputs at steps before a
//    sample's first real one, in the order the layer reads them (reversed
//    for go_backwards, as its outputs are), are zeroed.
//    TFJS_BRIDGE_MASKED_START=stock keeps tfjs's (the tests' negative control).

/** The mask tensor [B, T] of an RNN call, if there is one. */
function callMask(kwargs) {
  const mask = kwargs ? kwargs.mask : null;
  const one = Array.isArray(mask) ? mask[0] : mask;
  return one != null && one.rank === 2 ? one : null;
}

/** Base (an RNN layer class) given initial states as Keras is. */
function withKerasInitialState(tf, Base) {
  class KerasInitialState extends Base {
    apply(inputs, kwargs) {
      const first = Array.isArray(inputs) ? inputs[0] : inputs;
      const inModel = this.inboundNodes.length > 0 && !(first instanceof tf.SymbolicTensor);
      if (!inModel || !kwargs) return super.apply(inputs, kwargs);
      // a copy: tfjs's apply stores this layer's states in the one it is given
      const own = { ...kwargs };
      delete own.initialState;
      return super.apply(inputs, own);
    }

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
  KerasInitialState.className = Base.className;
  return KerasInitialState;
}

module.exports = { withKerasInitialState };
