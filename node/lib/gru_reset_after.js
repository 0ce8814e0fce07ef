'use strict';
// Keras's default GRU (reset_after=True) for tfjs-layers.
//
// tfjs-layers 4.22 only has the "reset before" GRU and throws "GRUCell does not
// support reset_after parameter set to true" on Keras's default. This module
// registers a GRUCell and a GRU under the class names the converter writes
// ('GRUCell', 'GRU'), so tf.loadLayersModel of a converted Keras GRU, building
// one in code (resetAfterGRU(tf).GRU) and training all work.
// resetAfter=false keeps the stock tfjs code path.
//
// Reset after (Keras GRUCell, implementation 2), with bias of shape [2, 3U]:
//   [xz, xr, xh] = x·W + b_input        [hz, hr, hh] = h·U + b_recurrent
//   z = σ(xz + hz)   r = σ(xr + hr)   h~ = tanh(xh + r ⊙ hh)
//   h' = z ⊙ h + (1 − z) ⊙ h~
// Reset before (tfjs): h~ = tanh(xh + (r ⊙ h)·U_h), one bias of shape [3U].

const { oncePerTf } = require('./per_tf');

/** The registered classes for this tf; `new GRU({units, resetAfter: true, ...})`. */
const resetAfterGRU = oncePerTf((tf) => {
  // The stock classes are not exported by name; their instances are.
  const StockGRUCell = tf.layers.gruCell({ units: 1 }).constructor;
  const StockGRU = tf.layers.gru({ units: 1 }).constructor;

  class GRUCell extends StockGRUCell {
    constructor(args) {
      // The stock constructor refuses resetAfter; it sets everything else.
      super({ ...args, resetAfter: false });
      this.resetAfter = Boolean(args.resetAfter);
    }

    build(inputShape) {
      if (!this.resetAfter) {
        super.build(inputShape);
        return;
      }
      const shape = Array.isArray(inputShape[0]) ? inputShape[0] : inputShape;
      const inputDim = shape[shape.length - 1];
      const u = this.units;
      this.kernel = this.addWeight('kernel', [inputDim, 3 * u], null, this.kernelInitializer,
        this.kernelRegularizer, true, this.kernelConstraint);
      this.recurrentKernel = this.addWeight('recurrent_kernel', [u, 3 * u], null,
        this.recurrentInitializer, this.recurrentRegularizer, true, this.recurrentConstraint);
      // Keras keeps the input and the recurrent biases apart: shape [2, 3U].
      this.bias = this.useBias
        ? this.addWeight('bias', [2, 3 * u], null, this.biasInitializer, this.biasRegularizer,
          true, this.biasConstraint)
        : null;
      this.built = true;
    }

    call(inputs, kwargs) {
      if (!this.resetAfter) return super.call(inputs, kwargs);
      return tf.tidy(() => {
        if (inputs.length !== 2) throw new Error(`GRUCell expects 2 input tensors, got ${inputs.length}`);
        const training = kwargs.training == null ? false : kwargs.training;
        let [x, hPrev] = inputs;
        this.makeDropoutMasks(x, hPrev, training);
        if (this.dropoutMask) x = tf.mul(x, this.dropoutMask[0]);
        let hIn = hPrev;
        if (this.recurrentDropoutMask) hIn = tf.mul(hPrev, this.recurrentDropoutMask[0]);

        let matrixX = tf.matMul(x, this.kernel.read());
        let matrixInner = tf.matMul(hIn, this.recurrentKernel.read());
        if (this.useBias) {
          const [inputBias, recurrentBias] = tf.unstack(this.bias.read(), 0);
          matrixX = tf.add(matrixX, inputBias);
          matrixInner = tf.add(matrixInner, recurrentBias);
        }
        const [xZ, xR, xH] = tf.split(matrixX, 3, 1);
        const [hZ, hR, hH] = tf.split(matrixInner, 3, 1);
        const z = this.recurrentActivation.apply(tf.add(xZ, hZ));
        const r = this.recurrentActivation.apply(tf.add(xR, hR));
        const candidate = this.activation.apply(tf.add(xH, tf.mul(r, hH)));
        const h = tf.add(tf.mul(z, hPrev), tf.mul(tf.sub(1, z), candidate));
        return [h, h];
      });
    }

    // The same masks the stock cell draws (one per gate; like tfjs, the first
    // is applied to the whole input, as in Keras's implementation 2).
    makeDropoutMasks(x, h, training) {
      const draw = (like, rate) => [0, 1, 2].map(() =>
        tf.keep(tf.tidy(() => (training ? tf.dropout(tf.onesLike(like), rate) : tf.onesLike(like)))));
      if (this.dropout > 0 && this.dropout < 1 && this.dropoutMask == null) {
        this.dropoutMask = draw(x, this.dropout);
      }
      if (this.recurrentDropout > 0 && this.recurrentDropout < 1 && this.recurrentDropoutMask == null) {
        this.recurrentDropoutMask = draw(h, this.recurrentDropout);
      }
    }

    getConfig() {
      return { ...super.getConfig(), resetAfter: this.resetAfter };
    }
  }
  GRUCell.className = 'GRUCell';

  class GRU extends StockGRU {
    constructor(args) {
      super({ ...args, resetAfter: false });
      // RNN keeps whatever cell it was given; swap in the one that knows resetAfter.
      this.cell = new GRUCell(args);
    }

    get resetAfter() {
      return this.cell.resetAfter;
    }
  }
  GRU.className = 'GRU';

  tf.serialization.registerClass(GRUCell);
  tf.serialization.registerClass(GRU);
  return { GRU, GRUCell };
});

module.exports = { resetAfterGRU };
