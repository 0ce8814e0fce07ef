'use strict';
// Keras's default GRU (reset_after=True) for tfjs-layers.
//
// tfjs-layers 4.22 only has the "reset before" GRU and throws "GRUCell does not
// support reset_after parameter set to true" on Keras's default. This module
// defines a GRUCell and a GRU for the class names the converter writes
// ('GRUCell', 'GRU'), so tf.loadLayersModel of a converted Keras GRU, building
// one in code (resetAfterGRU(tf).GRU) and training all work.
// resetAfter=false keeps the stock tfjs code path.
//
// Reset after (Keras GRUCell, implementation 2) keeps the input and the
// recurrent biases apart, shape [2, 3U]; the step itself is cells.js's
// gruStep. Reset before (tfjs): one bias of shape [3U].
//
// The classes are registered by index.js (installKerasLayers).

const { oncePerTf } = require('./per_tf');
const { tfjsOps } = require('./ops');
const { gruStep } = require('./cells');

/** The classes for this tf; `new GRU({units, resetAfter: true, ...})`. */
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
      this.kernel = this.addWeight(
        'kernel',
        [inputDim, 3 * u],
        null,
        this.kernelInitializer,
        this.kernelRegularizer,
        true,
        this.kernelConstraint,
      );
      this.recurrentKernel = this.addWeight(
        'recurrent_kernel',
        [u, 3 * u],
        null,
        this.recurrentInitializer,
        this.recurrentRegularizer,
        true,
        this.recurrentConstraint,
      );
      // Keras keeps the input and the recurrent biases apart: shape [2, 3U].
      this.bias = this.useBias
        ? this.addWeight(
            'bias',
            [2, 3 * u],
            null,
            this.biasInitializer,
            this.biasRegularizer,
            true,
            this.biasConstraint,
          )
        : null;
      this.built = true;
    }

    call(inputs, kwargs) {
      if (!this.resetAfter) return super.call(inputs, kwargs);
      return tf.tidy(() => {
        if (inputs.length !== 2)
          throw new Error(`GRUCell expects 2 input tensors, got ${inputs.length}`);
        const training = kwargs.training == null ? false : kwargs.training;
        const [input, hPrev] = inputs;
        let x = input;
        this.makeDropoutMasks(x, hPrev, training);
        if (this.dropoutMask) x = tf.mul(x, this.dropoutMask[0]);
        const hIn = this.recurrentDropoutMask ? tf.mul(hPrev, this.recurrentDropoutMask[0]) : hPrev;

        let projected = tf.matMul(x, this.kernel.read());
        let recurrentBias = null;
        if (this.useBias) {
          const [inputBias, biasOfRecurrent] = tf.unstack(this.bias.read(), 0);
          projected = tf.add(projected, inputBias);
          recurrentBias = biasOfRecurrent;
        }
        const ops = tfjsOps(tf);
        const u = this.units;
        const { h } = gruStep(
          ops,
          {
            act: (v) => this.activation.apply(v),
            recAct: (v) => this.recurrentActivation.apply(v),
            resetAfter: true,
            width: u,
          },
          { recurrent: this.recurrentKernel.read(), recurrentBias },
          ops.split(projected, [2 * u, u]),
          hPrev,
          hIn,
        );
        return [h, h];
      });
    }

    // The same masks the stock cell draws (one per gate; like tfjs, the first
    // is applied to the whole input, as in Keras's implementation 2).
    makeDropoutMasks(x, h, training) {
      const draw = (like, rate) =>
        [0, 1, 2].map(() =>
          tf.keep(
            tf.tidy(() => (training ? tf.dropout(tf.onesLike(like), rate) : tf.onesLike(like))),
          ),
        );
      if (this.dropout > 0 && this.dropout < 1 && this.dropoutMask == null) {
        this.dropoutMask = draw(x, this.dropout);
      }
      if (
        this.recurrentDropout > 0 &&
        this.recurrentDropout < 1 &&
        this.recurrentDropoutMask == null
      ) {
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

  return { GRU, GRUCell };
});

module.exports = { resetAfterGRU };
