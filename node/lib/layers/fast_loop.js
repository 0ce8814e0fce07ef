'use strict';
// A faster time loop for tfjs-layers' GRU and LSTM: the same arithmetic in a
// third of the kernels.
//
// tfjs-node runs a layers model op by op, and a recurrent layer costs its
// per-step ops times the time steps: about 30 µs of dispatch each, whatever
// the batch. The stock cells spend 42 kernels per step on a GRU and 37 on an
// LSTM (the input projection redone every step, weights split every step,
// hard_sigmoid's scalars made afresh, 1 − z as two ops). This loop projects
// the whole input sequence with one matMul before the loop and keeps 11–14
// kernels per step (cells.js). Training uses it too: on tfjs-node as one op
// with its own gradient (backprop.js), elsewhere through tfjs's autodiff of
// the loop. When it runs: loop_policy.js. Its weights: loop_weights.js.
const { tfjsOps, opsFor, activationOf, tapeOn } = require('./ops');
const { gruStep, lstmStep, CELLS } = require('./cells');
const { fastLoopInput, maskOf } = require('./loop_policy');
const {
  layerWeights,
  foldsHardSigmoid,
  sideBySide,
  cachedLoopWeights,
  dropPreparedWeights,
} = require('./loop_weights');
const { backpropSupported, recurrenceWithBackprop } = require('./backprop');

/**
 * [T, B, G] as T tensors [B, G]. One step is a reshape: tfjs's gradient of a
 * one-output unstack fails ("tensors passed to stack must be a Tensor[]").
 */
function unstackSteps(tf, timeMajor) {
  const [steps, ...rest] = timeMajor.shape;
  return steps === 1 ? [tf.reshape(timeMajor, rest)] : tf.unstack(timeMajor, 0);
}

/**
 * x·kernel + bias for the whole sequence, time-major and in the order the
 * layer reads the steps (reversed for goBackwards, as stock rnn() does):
 * [T, B, G]. The narrower of the input and the projection is the one
 * transposed and reversed: for lstm_sine [256, 24, 1] rather than
 * [256, 24, 128] (at B=256 the transpose after the product cost 0.33 ms of
 * a 5.4 ms prediction).
 */
function wholeProjection(tf, ops, layer, x, kernel, bias) {
  const [batch, steps, depth] = x.shape;
  const width = kernel.shape[1];
  const readOrder = (major) => (layer.goBackwards ? tf.reverse(major, 0) : major);
  const inputFirst = depth <= width;
  const rows = inputFirst ? readOrder(tf.transpose(x, [1, 0, 2])) : x;
  let projected = ops.matMul(tf.reshape(rows, [batch * steps, depth]), kernel);
  if (bias) projected = ops.add(projected, bias);
  return inputFirst
    ? tf.reshape(projected, [steps, batch, width])
    : readOrder(tf.transpose(tf.reshape(projected, [batch, steps, width]), [1, 0, 2]));
}

/**
 * xAt(t) -> each step's input projection cut into the kind's parts (CELLS:
 * multiples of the loop's state width W), [B, part·W] each. On tfjs-node the
 * whole sequence is projected by one matMul before the loop. The pure-JS and
 * WASM backends copy slices slowly (WASM: 119 ms to cut a GRU(64)'s
 * [28, 256, 192] projection into steps, against 12 ms for all its matMuls;
 * measured), so there each step is projected from the input's step.
 */
function loopInputs(tf, ops, layers, weights, x, kind) {
  const { width, kernels, inputBiases } = weights;
  const { blocks, parts } = CELLS[kind];
  const sizes = parts.map((part) => part * width);
  if (tf.getBackend() === 'tensorflow') {
    const whole = sideBySide(
      tf,
      layers.map((layer, d) => wholeProjection(tf, ops, layer, x, kernels[d], inputBiases[d])),
      blocks,
    );
    // (a one-part tf.split breaks tfjs's gradient of split: no split then)
    const steps = (sizes.length > 1 ? tf.split(whole, sizes, 2) : [whole]).map((part) =>
      unstackSteps(tf, part),
    );
    return (t) => steps.map((part) => part[t]);
  }
  const [layer] = layers; // one direction here
  const major = tf.transpose(x, [1, 0, 2]);
  const inputs = unstackSteps(tf, layer.goBackwards ? tf.reverse(major, 0) : major);
  return (t) => {
    let projected = ops.matMul(inputs[t], kernels[0]);
    if (inputBiases[0]) projected = ops.add(projected, inputBiases[0]);
    return sizes.length > 1 ? ops.split(projected, sizes) : [projected];
  };
}

/** The step's activations: a folded hard sigmoid is a clip (slope and offset are in the weights). */
function stepActivations(tf, ops, layer) {
  const { cell } = layer;
  return {
    act: activationOf(tf, ops, cell.activation),
    recAct: foldsHardSigmoid(layer) ? ops.clip01 : activationOf(tf, ops, cell.recurrentActivation),
  };
}

/**
 * maskAt(t) -> bool [B, W]: which samples' step t is real, in the order each
 * layer reads the steps (a padded step keeps the previous state and repeats
 * the previous output, as tfjs's and Keras's rnn() do); null without a mask.
 * For a Bidirectional's two directions side by side, each half of the W
 * columns follows its own layer's order: the backward one reads time reversed.
 */
function loopMask(tf, layers, mask, width) {
  if (!mask) return null;
  const major = tf.transpose(tf.cast(mask, 'float32'), [1, 0]); // [T, B]
  const columns = width / layers.length;
  const halves = layers.map((layer) =>
    tf.tile(tf.expandDims(layer.goBackwards ? tf.reverse(major, 0) : major, 2), [1, 1, columns]),
  );
  const wide = tf.cast(halves.length === 1 ? halves[0] : tf.concat(halves, 2), 'bool');
  const steps = unstackSteps(tf, wide);
  return (t) => steps[t];
}

/**
 * The loop over time of one layer, or of a Bidirectional's two directions side
 * by side (`layers`), with prepared `weights` (loop_weights.js) and an
 * optional mask [B, T] (the input's; loopMask orders it per direction). Returns every step's state h [B, W]
 * in the order the steps were read, and the final states: [h] for a GRU,
 * [h, c] for an LSTM (what returnState gives after the output).
 */
function runLoop(tf, layers, weights, x, kind, mask = null) {
  const ops = opsFor(tf);
  const [first] = layers;
  const params = {
    ...stepActivations(tf, ops, first),
    resetAfter: Boolean(first.cell.resetAfter),
    width: weights.width,
  };
  const xAt = loopInputs(tf, ops, layers, weights, x, kind);
  const realAt = loopMask(tf, layers, mask, weights.width);
  let h = tf.zeros([x.shape[0], weights.width]);
  let c = h;
  const states = [];
  for (let t = 0; t < x.shape[1]; t++) {
    const real = realAt && realAt(t);
    const kept = (next, previous) => (real ? ops.select(real, next, previous) : next);
    if (kind === 'GRU') {
      h = kept(gruStep(ops, params, weights, xAt(t), h).h, h);
    } else {
      const step = lstmStep(ops, params, weights, xAt(t)[0], h, c);
      [h, c] = [kept(step.h, h), kept(step.c, c)];
    }
    states.push(h);
  }
  return { states, last: kind === 'GRU' ? [h] : [h, c] };
}

/** Training on tfjs-node: the recurrence as one customGrad op (backprop.js). */
function backpropLoop(tf, layer, kind, x) {
  const weights = layerWeights(tf, layer, kind);
  const projection = wholeProjection(tf, tfjsOps(tf), layer, x, weights.kernel, weights.inputBias);
  const recurrence = recurrenceWithBackprop(tf, layer, kind);
  const extra = weights.recurrentBias
    ? [weights.recurrent, weights.recurrentBias]
    : [weights.recurrent];
  const out = recurrence(projection, ...extra);
  return layer.returnSequences ? tf.transpose(out, [1, 0, 2]) : out;
}

/**
 * One GRU or LSTM layer's output by the fast loop, and with returnState its
 * final states after it (tfjs's order: the output, then h, then c). Training
 * on tfjs-node goes through backprop.js, which takes neither a mask nor
 * returnState.
 */
function fastLayer(tf, layer, kind, x, mask) {
  if (tapeOn(tf) && !mask && !layer.returnState && backpropSupported(tf, layer)) {
    return backpropLoop(tf, layer, kind, x);
  }
  const weights = cachedLoopWeights(tf, layer, [layer], kind);
  const { states, last } = runLoop(tf, [layer], weights, x, kind, mask);
  const output = layer.returnSequences ? tf.stack(states, 1) : states[states.length - 1];
  return layer.returnState ? [output, ...last] : output;
}

/**
 * `Stock` (a GRU or LSTM layer class) with the fast loop wherever
 * loop_policy.js allows it, as class `kind`; the stock call otherwise.
 */
function withFastLoop(tf, Stock, kind) {
  class Fast extends Stock {
    call(inputs, kwargs) {
      const x = fastLoopInput(tf, this, inputs, kwargs);
      if (!x) return super.call(inputs, kwargs);
      return tf.tidy(() => fastLayer(tf, this, kind, x, maskOf(kwargs)));
    }

    dispose() {
      dropPreparedWeights(tf, this);
      return super.dispose();
    }
  }
  Fast.className = kind;
  return Fast;
}

module.exports = { withFastLoop, runLoop, wholeProjection, stepActivations };
