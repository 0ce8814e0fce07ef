'use strict';
// When the fast loop (fast_loop.js) runs instead of tfjs's stock loop.
//
// It handles what the registry and typical Keras exports need: a mask or
// none (one mask for the layer's one input), returnState or not, no initial
// state, not stateful, and no dropout while training. Anything else goes to
// the stock loop. By default it runs on tfjs-node and on a page's webgpu
// (where the stock loop is wrong, below), and on the pure-JS, WASM and WebGL
// backends for batches of one only: there it was
// faster for all five registry models at batch 1 (1.1-63x) and the stock
// loop for most at 32 and 256 (docs/performance.md). TFJS_BRIDGE_RNN_LOOP=
// stock or =fast forces one loop everywhere (the benchmark and the tests use it).
const { tapeOn } = require('./ops');

/** Whether a call on `batch` samples may take the fast loop (TFJS_BRIDGE_RNN_LOOP, backend). */
function fastLoopWanted(tf, batch) {
  const forced = process.env.TFJS_BRIDGE_RNN_LOOP;
  if (forced === 'stock' || forced === 'fast') return forced === 'fast';
  // webgpu (tfjs 4.22): the stock loop's mask preparation compiles a WGSL
  // shader that fails ("setOutputAtIndex: expected f32, got i32"), the device
  // is lost and every later result is garbage (spam: max |error| 0.98); the
  // fast loop never builds that shader (2.4e-6 at every batch).
  return tf.getBackend() === 'tensorflow' || tf.getBackend() === 'webgpu' || batch === 1;
}

/** The call's one mask tensor [B, T], null when there is none, undefined when it is not one. */
function maskOf(kwargs) {
  const { mask } = kwargs;
  if (mask == null) return null;
  const one = Array.isArray(mask) ? (mask.length === 1 ? mask[0] : undefined) : mask;
  return one != null && one.rank === 2 ? one : undefined;
}

/** The input tensor when the fast loop applies to this call of `layer`, else null. */
function fastLoopInput(tf, layer, inputs, kwargs = {}) {
  const cell = layer.cell;
  const dropping = kwargs.training && (cell.dropout > 0 || cell.recurrentDropout > 0);
  if (maskOf(kwargs) === undefined || kwargs.initialState != null || layer.stateful || dropping) {
    return null;
  }
  const x = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : null) : inputs;
  return x && x.rank === 3 && x.dtype === 'float32' && fastLoopWanted(tf, x.shape[0]) ? x : null;
}

/**
 * Whether both directions of a Bidirectional may run as one loop: tfjs-node
 * with no tape (inference), a merge mode we have, two alike layers (units,
 * bias, activations, reset-after, returnSequences) that would each take the
 * fast loop. Returns the input tensor then, else null.
 */
function bothDirectionsInput(tf, bidirectional, inputs, kwargs, merges) {
  const { forwardLayer: fwd, backwardLayer: bwd } = bidirectional;
  if (
    tf.getBackend() !== 'tensorflow' ||
    tapeOn(tf) ||
    bidirectional.returnState ||
    !Object.hasOwn(merges, bidirectional.mergeMode)
  )
    return null;
  if (bwd.getClassName() !== fwd.getClassName()) return null;
  const same = (get) => get(fwd.cell) === get(bwd.cell);
  const alike = [
    (c) => c.units,
    (c) => c.useBias,
    (c) => Boolean(c.resetAfter),
    (c) => c.activation.getClassName(),
    (c) => c.recurrentActivation.getClassName(),
  ].every(same);
  const x =
    alike && fwd.returnSequences === bwd.returnSequences
      ? fastLoopInput(tf, fwd, inputs, kwargs)
      : null;
  return x && fastLoopInput(tf, bwd, inputs, kwargs) ? x : null;
}

module.exports = { fastLoopInput, bothDirectionsInput, maskOf };
