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
// kernels per step. Training uses it too: on tfjs-node as one op with its own
// gradient (rnn_backprop.js), elsewhere through tfjs's autodiff of the loop.
//
// It handles what the registry and typical Keras exports need: no mask, no
// initial state, not stateful, no returnState, and no dropout while training.
// Anything else goes to the stock loop. By default it runs on tfjs-node only:
// on the pure-JS and WASM backends the stock loop measured faster for most
// models (README, Performance). TFJS_BRIDGE_RNN_LOOP=stock or =fast forces
// one loop everywhere (the benchmark and the tests use it).
const { resetAfterGRU } = require('./gru_reset_after');
const { directOps } = require('./tf_direct');
const { backpropSupported, recurrenceWithBackprop } = require('./rnn_backprop');
const { oncePerTf } = require('./per_tf');

/** Whether this call may take the fast loop, by TFJS_BRIDGE_RNN_LOOP and backend. */
function fastLoopWanted(tf) {
  const forced = process.env.TFJS_BRIDGE_RNN_LOOP;
  if (forced === 'stock' || forced === 'fast') return forced === 'fast';
  return tf.getBackend() === 'tensorflow';
}

/** The input tensor when the fast loop applies to this call, else null. */
function fastLoopInput(tf, layer, inputs, kwargs = {}) {
  if (!fastLoopWanted(tf)) return null;
  const cell = layer.cell;
  const dropping = kwargs.training && (cell.dropout > 0 || cell.recurrentDropout > 0);
  if (kwargs.mask != null || kwargs.initialState != null || layer.stateful || layer.returnState || dropping) {
    return null;
  }
  const x = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : null) : inputs;
  return x && x.rank === 3 && x.dtype === 'float32' ? x : null;
}

/** Whether a gradient tape is recording the ops run now (fit, tf.grad). */
function tapeOn(tf) {
  const { gradientDepth, kernelDepth } = tf.engine().state;
  return gradientDepth > 0 && kernelDepth === 0;
}

/**
 * The ops a loop step uses: on tfjs-node with no tape recording, TensorFlow's
 * ops called directly (tf_direct.js); else the tfjs ops (any backend,
 * differentiable).
 */
function opsFor(tf) {
  if (tf.getBackend() === 'tensorflow' && !tapeOn(tf)) return directOps(tf);
  return {
    matMul: (a, b) => tf.matMul(a, b),
    add: (a, b) => tf.add(a, b),
    sub: (a, b) => tf.sub(a, b),
    mul: (a, b) => tf.mul(a, b),
    tanh: (v) => tf.tanh(v),
    sigmoid: (v) => tf.sigmoid(v),
    clip01: (v) => tf.clipByValue(v, 0, 1),
    split: (v, sizes) => tf.split(v, sizes, 1), // along axis 1 of [B, N]
  };
}

/**
 * A layer's activation as a function of ops. tf-keras 2.x's hard_sigmoid
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

/**
 * [T, B, G] as T tensors [B, G]. One step is a reshape: tfjs's gradient of a
 * one-output unstack fails ("tensors passed to stack must be a Tensor[]").
 */
function unstackSteps(tf, timeMajor) {
  const [steps, ...rest] = timeMajor.shape;
  return steps === 1 ? [tf.reshape(timeMajor, rest)] : tf.unstack(timeMajor, 0);
}

/** [B, T, F] as [T, B, F], steps in the order the layer reads them. */
function timeMajor(tf, layer, t) {
  const major = tf.transpose(t, [1, 0, 2]);
  return layer.goBackwards ? tf.reverse(major, 0) : major;
}

/** x·kernel + bias for the whole sequence, time-major: [T, B, G]. */
function wholeProjection(tf, layer, x, kernel, bias) {
  const [batch, steps, depth] = x.shape;
  let projected = tf.matMul(tf.reshape(x, [batch * steps, depth]), kernel);
  if (bias) projected = tf.add(projected, bias);
  return timeMajor(tf, layer, tf.reshape(projected, [batch, steps, -1]));
}

/**
 * The input's projection x_t·kernel + bias for each step t, in the order the
 * layer reads the steps (reversed for goBackwards, as stock rnn() does), cut
 * into parts of `sizes` columns: xAt(t) -> [part, ...], each [B, size].
 * On tfjs-node the whole sequence is projected by one matMul before the loop.
 * The pure-JS and WASM backends copy slices slowly (WASM: 119 ms to cut a
 * GRU(64)'s [28, 256, 192] projection into steps, against 12 ms for all its
 * matMuls; measured), so there each step is projected from the input's step.
 */
function inputProjection(tf, ops, layer, x, kernel, bias, sizes) {
  if (tf.getBackend() === 'tensorflow') {
    const whole = wholeProjection(tf, layer, x, kernel, bias);
    // (a one-part tf.split breaks tfjs's gradient of split: no split then)
    const parts = (sizes.length > 1 ? tf.split(whole, sizes, 2) : [whole]).map((part) => unstackSteps(tf, part));
    return (t) => parts.map((part) => part[t]);
  }
  const inputs = unstackSteps(tf, timeMajor(tf, layer, x));
  return (t) => {
    let projected = ops.matMul(inputs[t], kernel);
    if (bias) projected = ops.add(projected, bias);
    return sizes.length > 1 ? ops.split(projected, sizes) : [projected];
  };
}

/** The layer's output: the last state, or every step's as [B, T, U]. */
function layerOutput(tf, layer, perStep, last) {
  return layer.returnSequences ? tf.stack(perStep, 1) : last;
}

/** Training on tfjs-node: the recurrence as one op with its own gradient. */
function backpropWanted(tf, layer) {
  return tapeOn(tf) && backpropSupported(tf, layer);
}

/** The recurrence over the time-major projection as one customGrad op (rnn_backprop.js). */
function backpropLoop(tf, layer, kind, projection, weights) {
  const recurrence = recurrenceWithBackprop(tf, layer, kind, { directOps, activationOf });
  const out = recurrence(projection, ...weights);
  return layer.returnSequences ? tf.transpose(out, [1, 0, 2]) : out;
}

/** What both loops start from: the cell, its ops and its two activations. */
function loopParts(tf, layer) {
  const cell = layer.cell;
  const ops = opsFor(tf);
  return {
    cell,
    units: cell.units,
    ops,
    act: activationOf(tf, ops, cell.activation),
    recAct: activationOf(tf, ops, cell.recurrentActivation),
  };
}

// tfjs and Keras's GRU with reset before (tfjs default; Keras reset_after=False):
//   z, r = σ(x·W_zr + h·U_zr + b_zr)   h~ = tanh(x·W_h + (r ⊙ h)·U_h + b_h)
//   h' = z ⊙ h + (1 − z) ⊙ h~, computed as h~ + z ⊙ (h − h~)
// and with reset after (Keras default), bias [2, 3U] (input, recurrent):
//   [hz, hr, hh] = h·U + b_rec   h~ = tanh(x·W_h + b_in_h + r ⊙ hh)
function gruLoop(tf, layer, x) {
  const { cell } = layer;
  const kernel = cell.kernel.read();
  const recurrent = cell.recurrentKernel.read();
  const bias = cell.useBias ? cell.bias.read() : null;
  const [inputBias, recurrentBias] = cell.resetAfter && bias ? tf.unstack(bias, 0) : [bias, null];
  if (backpropWanted(tf, layer)) {
    const weights = recurrentBias ? [recurrent, recurrentBias] : [recurrent];
    return backpropLoop(tf, layer, 'GRU', wholeProjection(tf, layer, x, kernel, inputBias), weights);
  }

  const { units, ops, act, recAct } = loopParts(tf, layer);

  const xAt = inputProjection(tf, ops, layer, x, kernel, inputBias, [2 * units, units]);
  const [recurrentGates, recurrentCandidate] = tf.split(recurrent, [2 * units, units], 1);

  // One step's update gate z and candidate pre-activation, from h.
  const gatesAndCandidate = cell.resetAfter
    ? (t, h) => {
      const [xGates, xCandidate] = xAt(t);
      let inner = ops.matMul(h, recurrent);
      if (recurrentBias) inner = ops.add(inner, recurrentBias);
      const [innerGates, innerCandidate] = ops.split(inner, [2 * units, units]);
      const [z, r] = ops.split(recAct(ops.add(xGates, innerGates)), [units, units]);
      return [z, ops.add(xCandidate, ops.mul(r, innerCandidate))];
    }
    : (t, h) => {
      const [xGates, xCandidate] = xAt(t);
      const [z, r] = ops.split(recAct(ops.add(xGates, ops.matMul(h, recurrentGates))), [units, units]);
      return [z, ops.add(xCandidate, ops.matMul(ops.mul(r, h), recurrentCandidate))];
    };

  let h = tf.zeros([x.shape[0], units]);
  const perStep = [];
  for (let t = 0; t < x.shape[1]; t++) {
    const [z, candidateIn] = gatesAndCandidate(t, h);
    const candidate = act(candidateIn);
    h = ops.add(candidate, ops.mul(z, ops.sub(h, candidate)));
    if (layer.returnSequences) perStep.push(h);
  }
  return layerOutput(tf, layer, perStep, h);
}

// tfjs and Keras's LSTM, gates in the order i, f, c, o:
//   [i, f, g, o] = x·W + h·U + b   i, f, o = σ(·)   g = tanh(·)
//   c' = f ⊙ c + i ⊙ g   h' = o ⊙ tanh(c')
// The weights' columns are put in the order i, f, o, g once per call, so the
// three sigmoid gates take one activation per step.
function lstmLoop(tf, layer, x) {
  const { cell } = layer;
  const sigmoidGatesFirst = (w) => {
    const [i, f, g, o] = tf.split(w, 4, w.rank - 1);
    return tf.concat([i, f, o, g], w.rank - 1);
  };
  const kernel = sigmoidGatesFirst(cell.kernel.read());
  const recurrent = sigmoidGatesFirst(cell.recurrentKernel.read());
  const bias = cell.useBias ? sigmoidGatesFirst(cell.bias.read()) : null;
  if (backpropWanted(tf, layer)) {
    return backpropLoop(tf, layer, 'LSTM', wholeProjection(tf, layer, x, kernel, bias), [recurrent]);
  }

  const { units, ops, act, recAct } = loopParts(tf, layer);
  const xAt = inputProjection(tf, ops, layer, x, kernel, bias, [4 * units]);
  let h = tf.zeros([x.shape[0], units]);
  let c = h;
  const perStep = [];
  for (let t = 0; t < x.shape[1]; t++) {
    const [sigmoidIn, candidateIn] = ops.split(ops.add(xAt(t)[0], ops.matMul(h, recurrent)), [3 * units, units]);
    const [i, f, o] = ops.split(recAct(sigmoidIn), [units, units, units]);
    c = ops.add(ops.mul(f, c), ops.mul(i, act(candidateIn)));
    h = ops.mul(o, act(c));
    if (layer.returnSequences) perStep.push(h);
  }
  return layerOutput(tf, layer, perStep, h);
}

/**
 * tfjs-bridge's recurrent layers for this tf, registered under the converter's
 * class names (after the reset-after GRU they extend, so they win):
 * `new GRU({units, resetAfter, ...})`, `new LSTM(...)`.
 */
const recurrentLayers = oncePerTf((tf) => {
  const ResetAfterGRU = resetAfterGRU(tf).GRU;
  const StockLSTM = tf.layers.lstm({ units: 1 }).constructor;

  class GRU extends ResetAfterGRU {
    call(inputs, kwargs) {
      const x = fastLoopInput(tf, this, inputs, kwargs);
      return x ? tf.tidy(() => gruLoop(tf, this, x)) : super.call(inputs, kwargs);
    }
  }
  GRU.className = 'GRU';

  class LSTM extends StockLSTM {
    call(inputs, kwargs) {
      const x = fastLoopInput(tf, this, inputs, kwargs);
      return x ? tf.tidy(() => lstmLoop(tf, this, x)) : super.call(inputs, kwargs);
    }
  }
  LSTM.className = 'LSTM';

  tf.serialization.registerClass(GRU);
  tf.serialization.registerClass(LSTM);
  return { GRU, LSTM };
});

module.exports = { recurrentLayers };
