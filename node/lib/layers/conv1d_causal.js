'use strict';
// Keras's Conv1D(padding="causal") for tfjs-layers.
//
// tfjs-layers 4.22 accepts padding 'causal' in a Conv1D config, gives the
// layer the 'valid' output length (input - dilated kernel + 1), and throws
// "The support for CAUSAL padding mode in conv1dWithBias is not implemented
// yet" when it runs: a converted Keras forecasting front end (causal Conv1D
// -> GRU) loads, then fails its first predict.
//
// Keras's causal padding: output[t] depends on input[<= t]. The time axis is
// left-padded with dilation * (kernelSize - 1) zeros and convolved 'valid',
// so the output has ceil(steps / strides) steps, as in Keras. Here the same
// pad, then tfjs's own conv1d; only where tfjs cannot differentiate that conv
// (under a gradient tape with dilation > 1 on any backend, or on a backend
// without the Conv2DBackpropFilter kernel: WASM), the convolution is
// written as slices and one matMul, which every backend differentiates.
// Any other padding is the stock layer, unchanged. The config still says
// 'causal', so a saved model reloads as causal.
//
// The class is registered by index.js (installKerasLayers).

const { oncePerTf } = require('./per_tf');
const { tapeOn } = require('./ops');

const first = (v) => (Array.isArray(v) ? v[0] : v);

/** Whether tfjs has the gradient of its conv1d here, for this dilation. */
function convGradientAvailable(tf, dilation) {
  // tfjs-core's Conv2D gradient refuses dilations > 1 ("not yet supported in gradients").
  if (dilation !== 1) return false;
  const backend = tf.getBackend();
  return ['Conv2DBackpropFilter', 'Conv2DBackpropInput'].every((k) => tf.getKernel(k, backend));
}

/**
 * The causal convolution as tap slices and one matMul: x [B, T, C] and
 * kernel [K, C, F] -> [B, ceil(T / stride), F], no bias. Pad, Slice, Concat,
 * Reshape and BatchMatMul have gradients and kernels on every backend.
 */
function causalConvByPatches(tf, x, kernel, stride, dilation) {
  return tf.tidy(() => {
    const [batch, steps, channels] = x.shape;
    const [taps, , filters] = kernel.shape;
    const padded = tf.pad(x, [
      [0, 0],
      [dilation * (taps - 1), 0],
      [0, 0],
    ]);
    // Tap j sees padded[t + j * dilation]; tap-major like the kernel's [K, C].
    const slices = Array.from({ length: taps }, (_, j) =>
      tf.slice(padded, [0, j * dilation, 0], [batch, steps, channels]),
    );
    let patches = taps === 1 ? slices[0] : tf.concat(slices, 2);
    const width = taps * channels;
    const outSteps = Math.ceil(steps / stride);
    if (stride > 1) {
      // Steps 0, s, 2s, ...: fold the time axis by s and keep the first of
      // each fold (StridedSlice has no gradient in tfjs; Slice has).
      patches = tf.pad(patches, [
        [0, 0],
        [0, outSteps * stride - steps],
        [0, 0],
      ]);
      patches = tf
        .reshape(patches, [batch, outSteps, stride, width])
        .slice([0, 0, 0, 0], [batch, outSteps, 1, width]);
    }
    const y = tf.matMul(
      tf.reshape(patches, [batch * outSteps, width]),
      tf.reshape(kernel, [width, filters]),
    );
    return tf.reshape(y, [batch, outSteps, filters]);
  });
}

/** The causal convolution, no bias: tfjs's conv1d on the left-padded input where it can. */
function causalConv(tf, x, kernel, stride, dilation) {
  if (tapeOn(tf) && !convGradientAvailable(tf, dilation)) {
    return causalConvByPatches(tf, x, kernel, stride, dilation);
  }
  return tf.tidy(() => {
    const padded = tf.pad(x, [
      [0, 0],
      [dilation * (kernel.shape[0] - 1), 0],
      [0, 0],
    ]);
    return tf.conv1d(padded, kernel, stride, 'valid', 'NWC', dilation);
  });
}

/** The class for this tf; `new Conv1D({filters, kernelSize, padding: 'causal', ...})`. */
const causalConv1D = oncePerTf((tf) => {
  // The stock class is not exported by name; its instances are.
  const StockConv1D = tf.layers.conv1d({ filters: 1, kernelSize: 1 }).constructor;

  class Conv1D extends StockConv1D {
    constructor(args) {
      super(args);
      if (this.padding !== 'causal') return;
      // Refused: what Keras refuses too (strides and dilation both > 1), and
      // channelsFirst, where the time axis is not axis 1.
      if (this.dataFormat !== 'channelsLast') {
        throw new Error(`Conv1D: causal padding needs channelsLast data, not ${this.dataFormat}`);
      }
      if (first(this.strides) > 1 && first(this.dilationRate) > 1) {
        throw new Error(
          'Conv1D: causal padding with both strides > 1 and dilationRate > 1 is not ' +
            'supported (Keras refuses it too)',
        );
      }
    }

    call(inputs, kwargs) {
      if (this.padding !== 'causal') return super.call(inputs, kwargs);
      return tf.tidy(() => {
        if (Array.isArray(inputs) && inputs.length !== 1) {
          throw new Error(`Conv1D expects 1 input tensor, got ${inputs.length}`);
        }
        const x = Array.isArray(inputs) ? inputs[0] : inputs;
        const stride = first(this.strides);
        const dilation = first(this.dilationRate);
        let y = causalConv(tf, x, this.kernel.read(), stride, dilation);
        if (this.bias != null) y = tf.add(y, this.bias.read());
        return this.activation != null ? this.activation.apply(y) : y;
      });
    }

    computeOutputShape(inputShape) {
      if (this.padding !== 'causal') return super.computeOutputShape(inputShape);
      const shape = Array.isArray(inputShape[0]) ? inputShape[0] : inputShape;
      // Keras: as long as the input ('same' length), then strided.
      const steps = shape[1] == null ? null : Math.ceil(shape[1] / first(this.strides));
      return [shape[0], steps, this.filters];
    }
  }
  Conv1D.className = 'Conv1D';

  return { Conv1D };
});

module.exports = { causalConv1D, causalConvByPatches };
