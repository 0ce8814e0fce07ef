'use strict';
// Keras's GlobalAveragePooling1D and GlobalMaxPooling1D for tfjs-layers.
//
// tfjs-layers 4.22's GlobalAveragePooling1D ignores the mask: it is
// mean(x, 1) over every step, padding included, where Keras averages the
// real steps only. So the common text classifier Embedding(mask_zero=True)
// -> GRU/LSTM(return_sequences=True) -> GlobalAveragePooling1D -> Dense
// loads and runs, and answers something else (docs/models.md, fz0-078).
// Both pooling layers also ignore Keras's data_format and keepdims.
//
// Keras's masked average (tf_keras 2.19 and Keras 3): the sum over time of
// the steps the mask keeps, divided by how many it keeps; a sample masked
// throughout is 0 / 0, NaN, as in Keras. Masked steps count as 0, as in
// Keras 3 (ops.where); tf_keras multiplies by the mask, the same for finite
// values. Neither Keras's GlobalMaxPooling1D reads the mask: its max runs
// over every step, as tfjs's does. Both consume the mask (computeMask is
// null, as in Keras) and accept one, so a nested model that calls
// computeMask on every layer does not throw.
//
// TFJS_BRIDGE_MASKED_POOLING=stock runs tfjs's own average (the mask
// ignored), to show what the fix changes; the page bundle fixes it at build
// time, as TFJS_BRIDGE_RNN_LOOP.
//
// The classes are registered by index.js (installKerasLayers).

const { oncePerTf } = require('./per_tf');

const stockPooling = () => process.env.TFJS_BRIDGE_MASKED_POOLING === 'stock';

/** The mask of one input (a list of one, or a tensor), or null. */
function oneMask(mask) {
  return Array.isArray(mask) ? (mask[0] ?? null) : (mask ?? null);
}

/** The classes for this tf. */
const globalPooling1D = oncePerTf((tf) => {
  // The stock classes are not exported by name; their instances are.
  const StockAverage = tf.layers.globalAveragePooling1d({}).constructor;
  const StockMax = tf.layers.globalMaxPooling1d({}).constructor;

  /** What both share: data_format, keepdims, the mask accepted and consumed. */
  const withKerasOptions = (Stock) =>
    class extends Stock {
      constructor(args) {
        super(args || {});
        const { dataFormat = 'channelsLast', keepdims = false } = args || {};
        if (dataFormat !== 'channelsLast' && dataFormat !== 'channelsFirst') {
          throw new Error(`${this.getClassName()}: unknown dataFormat ${dataFormat}`);
        }
        this.dataFormat = dataFormat;
        this.keepdims = Boolean(keepdims);
        this.supportsMasking = true;
      }

      /** The time axis: 1 (channelsLast) or 2. */
      stepsAxis() {
        return this.dataFormat === 'channelsLast' ? 1 : 2;
      }

      computeOutputShape(inputShape) {
        const shape = Array.isArray(inputShape[0]) ? inputShape[0] : inputShape;
        const [batch, a, b] = shape;
        const channels = this.dataFormat === 'channelsLast' ? b : a;
        if (!this.keepdims) return [batch, channels];
        return this.dataFormat === 'channelsLast' ? [batch, 1, channels] : [batch, channels, 1];
      }

      computeMask() {
        return null;
      }

      getConfig() {
        return { ...super.getConfig(), dataFormat: this.dataFormat, keepdims: this.keepdims };
      }
    };

  class GlobalAveragePooling1D extends withKerasOptions(StockAverage) {
    call(inputs, kwargs) {
      return tf.tidy(() => {
        const x = Array.isArray(inputs) ? inputs[0] : inputs;
        const axis = this.stepsAxis();
        const mask = oneMask(kwargs && kwargs.mask);
        if (mask == null || stockPooling()) return tf.mean(x, axis, this.keepdims);
        // [batch, steps] -> 1 or 0 beside x's time axis, made by where(), not
        // by a cast: tfjs-backend-webgpu 4.22 compiles a broken shader
        // ("setOutputAtIndex: expected f32, got i32") for this mask cast to
        // float, and the device is lost (docs/browser.md).
        const bits = tf.cast(mask, 'bool');
        const ones = tf.where(bits, tf.ones(bits.shape, x.dtype), tf.zeros(bits.shape, x.dtype));
        const keep = tf.expandDims(ones, this.dataFormat === 'channelsLast' ? 2 : 1);
        const kept = tf.where(tf.greater(tf.broadcastTo(keep, x.shape), 0), x, tf.zerosLike(x));
        const count = tf.sum(keep, axis, this.keepdims);
        return tf.div(tf.sum(kept, axis, this.keepdims), count);
      });
    }
  }
  GlobalAveragePooling1D.className = 'GlobalAveragePooling1D';

  class GlobalMaxPooling1D extends withKerasOptions(StockMax) {
    call(inputs) {
      // Keras's max reads no mask either: every step, padding included.
      return tf.tidy(() => {
        const x = Array.isArray(inputs) ? inputs[0] : inputs;
        return tf.max(x, this.stepsAxis(), this.keepdims);
      });
    }
  }
  GlobalMaxPooling1D.className = 'GlobalMaxPooling1D';

  return { GlobalAveragePooling1D, GlobalMaxPooling1D };
});

module.exports = { globalPooling1D };
