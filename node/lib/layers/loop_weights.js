'use strict';
// The weights the fast loop reads, prepared from a layer's variables:
//   - an LSTM's gate columns reordered to i, f, o, g (cells.js lstmStep);
//   - a hard-sigmoid gate's slope and offset folded into its columns;
//   - a Bidirectional's two directions side by side (states [B, 2U], the
//     recurrent kernel block-diagonal);
// and kept per layer while its variables hold the same data (the cache).
const { tapeOn } = require('./ops');
const { CELLS } = require('./cells');

/** A GRU layer's weights as its loop reads them (Keras's reset-after bias is [2, 3U]). */
function gruWeights(tf, layer) {
  const { cell } = layer;
  const bias = cell.useBias ? cell.bias.read() : null;
  const [inputBias, recurrentBias] = cell.resetAfter && bias ? tf.unstack(bias, 0) : [bias, null];
  return {
    kernel: cell.kernel.read(),
    recurrent: cell.recurrentKernel.read(),
    inputBias,
    recurrentBias,
  };
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

const LAYER_WEIGHTS = { GRU: gruWeights, LSTM: lstmWeights };

/** One direction's weights as its step reads them, nothing folded (training's backward pass). */
const layerWeights = (tf, layer, kind) => LAYER_WEIGHTS[kind](tf, layer);

/** Whether the loop folds this layer's recurrent activation into its weights. */
const foldsHardSigmoid = (layer) => layer.cell.recurrentActivation.getClassName() === 'hardSigmoid';

/**
 * The weights with a hard-sigmoid gate clip(0.2v + 0.5, 0, 1) folded in: it
 * is linear up to its clip, so its slope and offset go into the gate columns
 * once per call (offset into the input bias), and each step takes one clip
 * instead of three ops.
 */
function foldedWeights(tf, layer, kind) {
  const weights = layerWeights(tf, layer, kind);
  if (!foldsHardSigmoid(layer)) return weights;
  const width = weights.kernel.shape[1];
  const gateColumns = CELLS[kind].sigmoidGates * layer.cell.units;
  const column = (gate, other) =>
    tf.concat([tf.fill([gateColumns], gate), tf.fill([width - gateColumns], other)]);
  const [scale, offset] = [column(0.2, 1), column(0.5, 0)];
  return {
    kernel: tf.mul(weights.kernel, scale),
    recurrent: tf.mul(weights.recurrent, scale),
    inputBias: weights.inputBias ? tf.add(tf.mul(weights.inputBias, scale), offset) : offset,
    recurrentBias: weights.recurrentBias ? tf.mul(weights.recurrentBias, scale) : null,
  };
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

/** Recurrent kernels [U, gates·U] of n directions as one [n·U, gates·n·U], zero between them. */
function blockDiagonal(tf, kernels, gates) {
  if (kernels.length === 1) return kernels[0];
  return tf.concat(
    kernels.map((kernel, d) =>
      sideBySide(
        tf,
        kernels.map((other, e) => (e === d ? kernel : tf.zerosLike(other))),
        gates,
      ),
    ),
    0,
  );
}

/**
 * The weights one loop reads, for one direction or a Bidirectional's two side
 * by side (`layers`): the width W (n·U) of the joined state [B, W], each
 * direction's kernel and input bias (for its projection), the recurrent
 * kernel and bias of the joined state, and for the reset-before GRU the
 * recurrent kernel cut into its gates and candidate parts (cells.js gruStep).
 */
function loopWeights(tf, layers, kind) {
  const directions = layers.map((layer) => foldedWeights(tf, layer, kind));
  const gates = CELLS[kind].blocks;
  const width = layers.length * layers[0].cell.units;
  const recurrent = blockDiagonal(
    tf,
    directions.map((d) => d.recurrent),
    gates,
  );
  const weights = {
    width,
    kernels: directions.map((d) => d.kernel),
    inputBiases: directions.map((d) => d.inputBias),
    recurrent,
    recurrentBias: directions[0].recurrentBias
      ? sideBySide(
          tf,
          directions.map((d) => d.recurrentBias),
          gates,
        )
      : null,
  };
  if (kind === 'GRU' && !layers[0].cell.resetAfter) {
    [weights.recurrentGates, weights.recurrentCandidate] = tf.split(
      recurrent,
      [2 * width, width],
      1,
    );
  }
  return weights;
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
  if (hit && hit.key.length === key.length && hit.key.every((k, i) => k === key[i]))
    return hit.weights;
  dropPreparedWeights(tf, owner);
  const weights = tf.tidy(() => loopWeights(tf, layers, kind));
  // Only what was made here: a weight used as it is is the layer's own variable.
  const own = new Set(variables);
  const tensors = Object.values(weights)
    .flat()
    .filter((t) => t instanceof tf.Tensor && !own.has(t));
  tensors.forEach((t) => tf.keep(t));
  preparedWeights.set(owner, { key, weights, tensors });
  return weights;
}

/** Frees what cachedLoopWeights kept for `owner` (its layer's dispose calls this). */
function dropPreparedWeights(tf, owner) {
  const hit = preparedWeights.get(owner);
  if (hit) tf.dispose(hit.tensors);
  preparedWeights.delete(owner);
}

module.exports = {
  layerWeights,
  foldsHardSigmoid,
  sideBySide,
  cachedLoopWeights,
  dropPreparedWeights,
};
