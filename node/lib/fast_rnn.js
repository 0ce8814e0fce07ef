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
// A Bidirectional over two such layers runs both directions as one loop on
// states [B, 2U] (sideBySide below), so each step's ops serve both: at
// batch 1 rnn_stack's prediction went from 7.6 to 4.9 ms.
//
// It handles what the registry and typical Keras exports need: no mask, no
// initial state, not stateful, no returnState, and no dropout while training.
// Anything else goes to the stock loop. By default it runs on tfjs-node, and
// on the pure-JS and WASM backends for batches of one only: there it was
// faster for all five registry models at batch 1 (1.1-63x) and the stock
// loop for most at 32 and 256 (README, Performance). TFJS_BRIDGE_RNN_LOOP=
// stock or =fast forces one loop everywhere (the benchmark and the tests use it).
const { resetAfterGRU } = require('./gru_reset_after');
const { directOps } = require('./tf_direct');
const { backpropSupported, recurrenceWithBackprop } = require('./rnn_backprop');
const { oncePerTf } = require('./per_tf');

/** Whether a call on `batch` samples may take the fast loop, by TFJS_BRIDGE_RNN_LOOP and backend. */
function fastLoopWanted(tf, batch) {
  const forced = process.env.TFJS_BRIDGE_RNN_LOOP;
  if (forced === 'stock' || forced === 'fast') return forced === 'fast';
  return tf.getBackend() === 'tensorflow' || batch === 1;
}

/** The input tensor when the fast loop applies to this call, else null. */
function fastLoopInput(tf, layer, inputs, kwargs = {}) {
  const cell = layer.cell;
  const dropping = kwargs.training && (cell.dropout > 0 || cell.recurrentDropout > 0);
  if (kwargs.mask != null || kwargs.initialState != null || layer.stateful || layer.returnState || dropping) {
    return null;
  }
  const x = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : null) : inputs;
  return x && x.rank === 3 && x.dtype === 'float32' && fastLoopWanted(tf, x.shape[0]) ? x : null;
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
  return tf.getBackend() === 'tensorflow' && !tapeOn(tf) ? directOps(tf) : tfjsOps(tf);
}

/** The loop's ops as tfjs ops: any backend, differentiable. */
function tfjsOps(tf) {
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
 * Tensors [..., gates·U] side by side gate by gate: [..., gates·(n·U)], gate
 * j's columns being [t0_j, t1_j, ...]. A Bidirectional layer's two
 * directions then run as one loop of the same ops on states [B, 2U]: each
 * elementwise op of a step sees its gate's columns of both directions.
 */
function sideBySide(tf, tensors, gates) {
  if (tensors.length === 1) return tensors[0];
  const split = (t) => tf.reshape(t, [...t.shape.slice(0, -1), gates, t.shape[t.rank - 1] / gates]);
  const joined = tf.concat(tensors.map(split), -1);
  return tf.reshape(joined, [...joined.shape.slice(0, -2), -1]);
}

/** Recurrent kernels [U, gates·U] of n directions as one [n·U, gates·n·U], zero across directions. */
function blockDiagonal(tf, kernels, gates) {
  if (kernels.length === 1) return kernels[0];
  return tf.concat(kernels.map((kernel, d) => sideBySide(tf,
    kernels.map((other, e) => (e === d ? kernel : tf.zerosLike(other))), gates)), 0);
}

/**
 * The weights one loop reads, for one direction or a Bidirectional's two side
 * by side (`layers`): the width W (n·U) of the joined state [B, W], each
 * direction's kernel and input bias (for its projection), the recurrent
 * kernel and bias of the joined state, and for the reset-before GRU the
 * recurrent kernel cut into its gates and candidate parts.
 */
function loopWeights(tf, layers, kind) {
  const directions = layers.map((layer) => stepWeights(tf, layer, kind));
  const gates = KINDS[kind].blocks;
  const width = layers.length * layers[0].cell.units;
  const recurrent = blockDiagonal(tf, directions.map((d) => d.recurrent), gates);
  return {
    width,
    kernels: directions.map((d) => d.kernel),
    inputBiases: directions.map((d) => d.inputBias),
    recurrent,
    recurrentBias: directions[0].recurrentBias
      ? sideBySide(tf, directions.map((d) => d.recurrentBias), gates) : null,
    recurrentParts: kind === 'GRU' && !layers[0].cell.resetAfter ? tf.split(recurrent, [2 * width, width], 1) : null,
  };
}

// Prepared weights per layer (or Bidirectional), reused while its variables
// hold the same tensors: preparing them is 10-30 tfjs kernels, a third of a
// batch-1 prediction of gru before this cache (0.8 of 2.3 ms).
const preparedWeights = new WeakMap();

/** The layers' variables, as tensors. */
const variablesOf = (layers) => layers.flatMap((layer) => layer.cell.weights.map((w) => w.read()));

/**
 * loopWeights of `layers`, built once per change of their variables and kept
 * on `owner` outside every tidy (dropPreparedWeights frees them). While a tape
 * records they are rebuilt each call, so the tape sees them made from the
 * variables.
 */
function cachedLoopWeights(tf, owner, layers, kind) {
  if (tapeOn(tf)) return loopWeights(tf, layers, kind);
  const variables = variablesOf(layers);
  // (assign() and setWeights() give a variable new data)
  const key = [tf.getBackend(), ...variables.map((v) => v.dataId)];
  const hit = preparedWeights.get(owner);
  if (hit && hit.key.length === key.length && hit.key.every((k, i) => k === key[i])) return hit.weights;
  dropPreparedWeights(tf, owner);
  const weights = tf.tidy(() => loopWeights(tf, layers, kind));
  // Only what was made here: a weight used as it is is the layer's own variable.
  const own = new Set(variables);
  const tensors = Object.values(weights).flat().filter((t) => t instanceof tf.Tensor && !own.has(t));
  tensors.forEach((t) => tf.keep(t));
  preparedWeights.set(owner, { key, weights, tensors });
  return weights;
}

function dropPreparedWeights(tf, owner) {
  const hit = preparedWeights.get(owner);
  if (hit) tf.dispose(hit.tensors);
  preparedWeights.delete(owner);
}

/**
 * xAt(t) -> each step's input projection cut into parts of `parts` × W
 * columns, [B, part·W] each (W: the loop's state width, weights.width). On
 * tfjs-node the whole sequence is projected by one matMul before the loop.
 * The pure-JS and WASM backends copy slices slowly
 * (WASM: 119 ms to cut a GRU(64)'s [28, 256, 192] projection into steps,
 * against 12 ms for all its matMuls; measured), so there each step is
 * projected from the input's step.
 */
function loopInputs(tf, ops, layers, weights, x, gates, parts) {
  const { width, kernels, inputBiases } = weights;
  const sizes = parts.map((part) => part * width);
  if (tf.getBackend() === 'tensorflow') {
    const whole = sideBySide(tf, layers.map((layer, d) =>
      wholeProjection(tf, ops, layer, x, kernels[d], inputBiases[d])), gates);
    // (a one-part tf.split breaks tfjs's gradient of split: no split then)
    const steps = (sizes.length > 1 ? tf.split(whole, sizes, 2) : [whole]).map((part) => unstackSteps(tf, part));
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

/** Training on tfjs-node: the recurrence as one op with its own gradient. */
function backpropWanted(tf, layer) {
  return tapeOn(tf) && backpropSupported(tf, layer);
}

/** The recurrence over the time-major projection as one customGrad op (rnn_backprop.js). */
function backpropLoop(tf, layer, kind, weights, x) {
  const projection = wholeProjection(tf, tfjsOps(tf), layer, x, weights.kernel, weights.inputBias);
  const recurrence = recurrenceWithBackprop(tf, layer, kind, { directOps, activationOf });
  const extra = weights.recurrentBias ? [weights.recurrent, weights.recurrentBias] : [weights.recurrent];
  const out = recurrence(projection, ...extra);
  return layer.returnSequences ? tf.transpose(out, [1, 0, 2]) : out;
}

/** What every loop starts from: its ops and the cell's two activations. */
function loopParts(tf, layer) {
  const { cell } = layer;
  const ops = opsFor(tf);
  return {
    ops,
    act: activationOf(tf, ops, cell.activation),
    // its slope and offset are in the weights (stepWeights)
    recAct: foldsHardSigmoid(layer) ? ops.clip01 : activationOf(tf, ops, cell.recurrentActivation),
  };
}

const foldsHardSigmoid = (layer) => layer.cell.recurrentActivation.getClassName() === 'hardSigmoid';

/**
 * The weights the step loops read. A hard-sigmoid gate clip(0.2v + 0.5, 0, 1)
 * is linear up to its clip, so its slope and offset go into the gate columns
 * of the weights once per call (offset into the input bias), and each step
 * takes one clip instead of three ops.
 */
function stepWeights(tf, layer, kind) {
  const weights = KINDS[kind].weights(tf, layer);
  if (!foldsHardSigmoid(layer)) return weights;
  const width = weights.kernel.shape[1];
  const gateColumns = KINDS[kind].sigmoidGates * layer.cell.units;
  const column = (gate, other) => tf.concat([tf.fill([gateColumns], gate), tf.fill([width - gateColumns], other)]);
  const [scale, offset] = [column(0.2, 1), column(0.5, 0)];
  return {
    kernel: tf.mul(weights.kernel, scale),
    recurrent: tf.mul(weights.recurrent, scale),
    inputBias: weights.inputBias ? tf.add(tf.mul(weights.inputBias, scale), offset) : offset,
    recurrentBias: weights.recurrentBias ? tf.mul(weights.recurrentBias, scale) : null,
  };
}

/** A GRU layer's weights as its loop reads them (Keras's reset-after bias is [2, 3U]). */
function gruWeights(tf, layer) {
  const { cell } = layer;
  const bias = cell.useBias ? cell.bias.read() : null;
  const [inputBias, recurrentBias] = cell.resetAfter && bias ? tf.unstack(bias, 0) : [bias, null];
  return { kernel: cell.kernel.read(), recurrent: cell.recurrentKernel.read(), inputBias, recurrentBias };
}

/**
 * An LSTM layer's weights with their gate columns put in the order i, f, o,
 * g (Keras and tfjs: i, f, g, o), so the three sigmoid gates take one
 * activation per step.
 */
function lstmWeights(tf, layer) {
  const { cell } = layer;
  const sigmoidGatesFirst = (w) => {
    const [i, f, g, o] = tf.split(w, 4, w.rank - 1);
    return tf.concat([i, f, o, g], w.rank - 1);
  };
  return {
    kernel: sigmoidGatesFirst(cell.kernel.read()),
    recurrent: sigmoidGatesFirst(cell.recurrentKernel.read()),
    inputBias: cell.useBias ? sigmoidGatesFirst(cell.bias.read()) : null,
    recurrentBias: null,
  };
}

// tfjs and Keras's GRU with reset before (tfjs default; Keras reset_after=False):
//   z, r = σ(x·W_zr + h·U_zr + b_zr)   h~ = tanh(x·W_h + (r ⊙ h)·U_h + b_h)
//   h' = z ⊙ h + (1 − z) ⊙ h~, computed as h~ + z ⊙ (h − h~)
// and with reset after (Keras default), bias [2, 3U] (input, recurrent):
//   [hz, hr, hh] = h·U + b_rec   h~ = tanh(x·W_h + b_in_h + r ⊙ hh)
// Returns every step's state [B, W] in the order the steps were read.
function gruSteps(tf, layers, weights, x) {
  const [{ cell }] = layers;
  const { ops, act, recAct } = loopParts(tf, layers[0]);
  const xAt = loopInputs(tf, ops, layers, weights, x, 3, [2, 1]);
  const { width, recurrent, recurrentBias } = weights;
  const [recurrentGates, recurrentCandidate] = weights.recurrentParts || [];

  // One step's update gate z and candidate pre-activation, from h.
  const gatesAndCandidate = cell.resetAfter
    ? (t, h) => {
      const [xGates, xCandidate] = xAt(t);
      let inner = ops.matMul(h, recurrent);
      if (recurrentBias) inner = ops.add(inner, recurrentBias);
      const [innerGates, innerCandidate] = ops.split(inner, [2 * width, width]);
      const [z, r] = ops.split(recAct(ops.add(xGates, innerGates)), [width, width]);
      return [z, ops.add(xCandidate, ops.mul(r, innerCandidate))];
    }
    : (t, h) => {
      const [xGates, xCandidate] = xAt(t);
      const [z, r] = ops.split(recAct(ops.add(xGates, ops.matMul(h, recurrentGates))), [width, width]);
      return [z, ops.add(xCandidate, ops.matMul(ops.mul(r, h), recurrentCandidate))];
    };

  let h = tf.zeros([x.shape[0], width]);
  const states = [];
  for (let t = 0; t < x.shape[1]; t++) {
    const [z, candidateIn] = gatesAndCandidate(t, h);
    const candidate = act(candidateIn);
    h = ops.add(candidate, ops.mul(z, ops.sub(h, candidate)));
    states.push(h);
  }
  return states;
}

// tfjs and Keras's LSTM, gates in the order i, f, c, o:
//   [i, f, g, o] = x·W + h·U + b   i, f, o = σ(·)   g = tanh(·)
//   c' = f ⊙ c + i ⊙ g   h' = o ⊙ tanh(c')
// run with the gates reordered to i, f, o, g (lstmWeights).
// Returns every step's state h [B, W] in the order the steps were read.
function lstmSteps(tf, layers, weights, x) {
  const { ops, act, recAct } = loopParts(tf, layers[0]);
  const xAt = loopInputs(tf, ops, layers, weights, x, 4, [4]);
  const { width, recurrent } = weights;
  let h = tf.zeros([x.shape[0], width]);
  let c = h;
  const states = [];
  for (let t = 0; t < x.shape[1]; t++) {
    const [sigmoidIn, candidateIn] = ops.split(ops.add(xAt(t)[0], ops.matMul(h, recurrent)), [3 * width, width]);
    const [i, f, o] = ops.split(recAct(sigmoidIn), [width, width, width]);
    c = ops.add(ops.mul(f, c), ops.mul(i, act(candidateIn)));
    h = ops.mul(o, act(c));
    states.push(h);
  }
  return states;
}

// blocks: the weights' column groups of U; sigmoidGates: how many of them,
// first, go through recAct (GRU: z, r of z, r, h; LSTM in the loop's order:
// i, f, o of i, f, o, g).
const KINDS = {
  GRU: { weights: gruWeights, steps: gruSteps, blocks: 3, sigmoidGates: 2 },
  LSTM: { weights: lstmWeights, steps: lstmSteps, blocks: 4, sigmoidGates: 3 },
};

/** One GRU or LSTM layer's output by the fast loop. */
function fastLayer(tf, layer, kind, x) {
  if (backpropWanted(tf, layer)) return backpropLoop(tf, layer, kind, KINDS[kind].weights(tf, layer), x);
  const states = KINDS[kind].steps(tf, [layer], cachedLoopWeights(tf, layer, [layer], kind), x);
  return layer.returnSequences ? tf.stack(states, 1) : states[states.length - 1];
}

const MERGES = {
  concat: (tf, a, b) => tf.concat([a, b], -1),
  sum: (tf, a, b) => tf.add(a, b),
  ave: (tf, a, b) => tf.mul(0.5, tf.add(a, b)),
  mul: (tf, a, b) => tf.mul(a, b),
};

/**
 * The input tensor when a Bidirectional layer's two directions may run as
 * one loop (tfjs-node, no tape: inference), else null. Both are this
 * module's GRU or LSTM by construction; they must take the fast loop alone.
 */
function bothDirectionsInput(tf, bidirectional, inputs, kwargs, kind) {
  const { forwardLayer: fwd, backwardLayer: bwd } = bidirectional;
  if (tf.getBackend() !== 'tensorflow' || tapeOn(tf) || !Object.hasOwn(MERGES, bidirectional.mergeMode)) return null;
  if (bwd.getClassName() !== fwd.getClassName()) return null;
  const same = (get) => get(fwd.cell) === get(bwd.cell);
  const alike = [(c) => c.units, (c) => c.useBias, (c) => Boolean(c.resetAfter),
    (c) => c.activation.getClassName(), (c) => c.recurrentActivation.getClassName()].every(same);
  const x = alike && fwd.returnSequences === bwd.returnSequences ? fastLoopInput(tf, fwd, inputs, kwargs) : null;
  return x && fastLoopInput(tf, bwd, inputs, kwargs) ? x : null;
}

/**
 * Keras's Bidirectional over two fast loops run as one (sideBySide): the
 * states are [B, 2U], forward then backward, and each step's ops serve both
 * directions: half the dispatches of running them one after the other.
 * The output is what tfjs's Bidirectional.call makes of the two layers'.
 */
function bidirectionalLoop(tf, bidirectional, kind, x) {
  const { forwardLayer: fwd, backwardLayer: bwd, mergeMode } = bidirectional;
  const layers = [fwd, bwd];
  const states = KINDS[kind].steps(tf, layers, cachedLoopWeights(tf, bidirectional, layers, kind), x);
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
 * tfjs-bridge's recurrent layers for this tf, registered under the converter's
 * class names (after the reset-after GRU they extend, so they win):
 * `new GRU({units, resetAfter, ...})`, `new LSTM(...)`, and a Bidirectional
 * that runs its two directions as one loop where it can.
 */
const recurrentLayers = oncePerTf((tf) => {
  const ResetAfterGRU = resetAfterGRU(tf).GRU;
  const StockLSTM = tf.layers.lstm({ units: 1 }).constructor;
  const StockBidirectional = tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 1 }) }).constructor;

  /** `Stock` with the fast loop wherever fastLoopInput allows, as class `kind`. */
  const withFastLoop = (Stock, kind) => {
    class Fast extends Stock {
      call(inputs, kwargs) {
        const x = fastLoopInput(tf, this, inputs, kwargs);
        return x ? tf.tidy(() => fastLayer(tf, this, kind, x)) : super.call(inputs, kwargs);
      }

      dispose() {
        dropPreparedWeights(tf, this);
        return super.dispose();
      }
    }
    Fast.className = kind;
    return Fast;
  };
  const GRU = withFastLoop(ResetAfterGRU, 'GRU');
  const LSTM = withFastLoop(StockLSTM, 'LSTM');

  class Bidirectional extends StockBidirectional {
    call(inputs, kwargs = {}) {
      const kind = this.forwardLayer instanceof GRU ? 'GRU' : this.forwardLayer instanceof LSTM ? 'LSTM' : null;
      const x = kind && bothDirectionsInput(tf, this, inputs, kwargs, kind);
      return x ? tf.tidy(() => bidirectionalLoop(tf, this, kind, x)) : super.call(inputs, kwargs);
    }

    dispose() {
      // tfjs disposes the two layers' variables, not the layers: their own
      // prepared weights (kept when they ran one by one) go here.
      [this, this.forwardLayer, this.backwardLayer].forEach((layer) => dropPreparedWeights(tf, layer));
      return super.dispose();
    }
  }
  Bidirectional.className = 'Bidirectional';

  tf.serialization.registerClass(GRU);
  tf.serialization.registerClass(LSTM);
  tf.serialization.registerClass(Bidirectional);
  return { GRU, LSTM, Bidirectional };
});

module.exports = { recurrentLayers };
