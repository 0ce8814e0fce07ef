'use strict';
// Recurrent models as streams: a batch of N independent sequences fed one
// step (or a chunk of steps) at a time, each step's output returned at once,
// the recurrent state kept between calls. A stream of T steps then costs T
// steps, not the T² of re-running the growing prefix.
//
// The steps are the fast loop's: cells.js's equations on ops.js's ops, with
// loop_weights.js's prepared weights (the same cache), so a stream computes
// what the whole-sequence loop computes. A model streams when it is a chain:
// one input, one output, each layer fed by the one before, and each layer
// either recurrent (GRU, LSTM, SimpleRNN, forward in time) or acting on each
// step alone (Dense, Activation, normalisation, dropout, Embedding, Masking).
// A recurrent layer that returns only its last output streams "the output if
// the sequence ended here": its state after each step; after it, per-step
// layers only. What else a model holds is refused, with the reason
// (streamRefusal).
const { opsFor, activationOf } = require('./ops');
const { gruStep, lstmStep, simpleStep, CELLS } = require('./cells');
const { cachedLoopWeights } = require('./loop_weights');
const { wholeProjection, stepActivations } = require('./fast_loop');
const { arrayCore, arrayRefusal } = require('./array_stream');

const RECURRENT = new Set(['GRU', 'LSTM', 'SimpleRNN']);
// Layers whose output at a step depends on that step's input alone (at
// inference: dropout and noise are identities then).
const PER_STEP = new Set([
  'Dense',
  'Activation',
  'Dropout',
  'AlphaDropout',
  'GaussianDropout',
  'GaussianNoise',
  'SpatialDropout1D',
  'LayerNormalization',
  'BatchNormalization',
  'ReLU',
  'LeakyReLU',
  'PReLU',
  'ELU',
  'ThresholdedReLU',
  'Softmax',
]);
const MASKING = new Set(['Embedding', 'Masking']);

/** The layers from the model's input to its output, in order, or a reason they are not a chain. */
function chainOf(model) {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    return {
      reason: `a stream takes one input and gives one output; the model has ${model.inputs.length} and ${model.outputs.length}`,
    };
  }
  const chain = [];
  let layer = model.outputs[0].sourceLayer;
  while (layer.getClassName() !== 'InputLayer') {
    const nodes = layer.inboundNodes;
    if (nodes.length !== 1 || nodes[0].inboundLayers.length !== 1) {
      return { reason: `layer ${layer.name} is not fed by one layer alone` };
    }
    chain.unshift(layer);
    [layer] = nodes[0].inboundLayers;
  }
  return { chain };
}

/** The input shape `layer` was built for (its one inbound node's). */
function builtShape(layer) {
  const shapes = layer.inboundNodes[0].inputShapes; // one Shape, or a list of them
  return Array.isArray(shapes[0]) ? shapes[0] : shapes;
}

/** Why `layer`, at this place in the chain, cannot stream (null when it can). */
function layerRefusal(layer, afterLastOutput) {
  const kind = layer.getClassName();
  if (kind === 'Bidirectional') {
    return `layer ${layer.name} (Bidirectional): its backward direction reads the sequence from its end, which a stream has not seen yet`;
  }
  if (RECURRENT.has(kind)) {
    if (layer.goBackwards) {
      return `layer ${layer.name} (${kind}, go_backwards): it reads the sequence from its end, which a stream has not seen yet`;
    }
    if (layer.returnState) return `layer ${layer.name} (${kind}) returns its state as outputs`;
    if (afterLastOutput) {
      return `layer ${layer.name} (${kind}) reads the last output of a recurrent layer, not a sequence`;
    }
    return null;
  }
  if (MASKING.has(kind)) return null;
  if (PER_STEP.has(kind)) {
    // a normalisation or softmax over any axis but the features mixes steps
    const axes = layer.axis === undefined ? [] : [layer.axis].flat();
    const rank = builtShape(layer).length;
    const alongFeatures = axes.every((a) => a === -1 || a === rank - 1);
    return alongFeatures
      ? null
      : `layer ${layer.name} (${kind}) acts along axis ${axes.join(', ')}, not the features alone`;
  }
  return `layer ${layer.name} (${kind}) is not known to act on each step alone`;
}

/** Why `model` (a tf.LayersModel) cannot stream, or null when it can. */
function streamRefusal(model) {
  const { chain, reason } = chainOf(model);
  if (reason) return reason;
  let afterLastOutput = false;
  for (const layer of chain) {
    const why = layerRefusal(layer, afterLastOutput);
    if (why) return why;
    if (RECURRENT.has(layer.getClassName()) && !layer.returnSequences) afterLastOutput = true;
  }
  return chain.some((layer) => RECURRENT.has(layer.getClassName()))
    ? null
    : 'the model has no recurrent layer';
}

/** A SimpleRNN layer's weights as its step reads them. */
function simpleWeights(layer) {
  const { cell } = layer;
  return {
    width: cell.units,
    kernels: [cell.kernel.read()],
    inputBiases: [cell.useBias ? cell.bias.read() : null],
    recurrent: cell.recurrentKernel.read(),
  };
}

/**
 * One recurrent layer over a chunk x [B, T, F] from `state` ([h] or [h, c]),
 * an optional mask [B, T] (a padded step keeps the state, as the whole loop
 * does): every step's h [B, T, W] and the state after the chunk.
 */
function recurrentChunk(tf, ops, layer, x, state, mask) {
  const kind = layer.getClassName();
  const weights =
    kind === 'SimpleRNN' ? simpleWeights(layer) : cachedLoopWeights(tf, layer, [layer], kind);
  const params =
    kind === 'SimpleRNN'
      ? { act: activationOf(tf, ops, layer.cell.activation) }
      : {
          ...stepActivations(tf, ops, layer),
          resetAfter: Boolean(layer.cell.resetAfter),
          width: weights.width,
        };
  const sizes = CELLS[kind].parts.map((part) => part * weights.width);
  const projected = wholeProjection(tf, ops, layer, x, weights.kernels[0], weights.inputBiases[0]);
  const steps = x.shape[1];
  const inputs =
    steps === 1 ? [tf.reshape(projected, projected.shape.slice(1))] : tf.unstack(projected, 0);
  const real = mask
    ? tf.unstack(
        tf.cast(
          tf.tile(tf.expandDims(tf.transpose(tf.cast(mask, 'float32')), 2), [1, 1, weights.width]),
          'bool',
        ),
        0,
      )
    : null;
  let [h, c] = state;
  const outputs = [];
  for (let t = 0; t < steps; t++) {
    const kept = (next, previous) => (real ? ops.select(real[t], next, previous) : next);
    if (kind === 'LSTM') {
      const step = lstmStep(ops, params, weights, inputs[t], h, c);
      [h, c] = [kept(step.h, h), kept(step.c, c)];
    } else if (kind === 'GRU') {
      h = kept(gruStep(ops, params, weights, ops.split(inputs[t], sizes), h).h, h);
    } else {
      h = kept(simpleStep(ops, params, weights, inputs[t], h).h, h);
    }
    outputs.push(h);
  }
  return { output: tf.stack(outputs, 1), state: kind === 'LSTM' ? [h, c] : [h] };
}

/**
 * A per-step layer on a chunk [B, T, ...]: called on [B·T, ...] when the model
 * gave it one step's features (after a last-output recurrent layer), so that
 * a layer built for rank 2 (BatchNormalization's input spec) runs as built.
 */
function perStepChunk(tf, layer, x) {
  const builtRank = builtShape(layer).length;
  const [batch, steps] = x.shape;
  const flat = builtRank === x.rank - 1 ? tf.reshape(x, [batch * steps, ...x.shape.slice(2)]) : x;
  let y = layer.call(flat, { training: false });
  if (Array.isArray(y)) [y] = y;
  return flat === x ? y : tf.reshape(y, [batch, steps, ...y.shape.slice(1)]);
}

/** Embedding (ids [B, T] -> [B, T, E]) and Masking: the chunk, and the mask they give. */
function maskingChunk(tf, layer, x) {
  if (layer.getClassName() === 'Embedding') {
    const ids = tf.cast(x, 'int32');
    // gather, not call(): call checks the chunk's length against input_length
    const y = tf.gather(layer.embeddings.read(), ids);
    return { y, mask: layer.maskZero ? tf.notEqual(ids, 0) : null };
  }
  return { y: layer.call(x, {}), mask: layer.computeMask(x, null) };
}

// The array steps (array_stream.js) run a stream when its rows' multiply-adds
// per step (batch x the chain's kernel sizes) are at most this many; above
// it TensorFlow's ops (fixed ~25 µs an op, ~29 ops a GRU step) cost less
// than JavaScript's arithmetic. Measured on tfjs-node, the 2-core AMD EPYC
// (AVX2), with `node node/scripts/bench-stream.js --crossover`
// (docs/streaming.md, "Array ops or TensorFlow's").
const ARRAY_MACS_LIMIT = 250000;

/** Multiply-adds of one stream's step: the sizes of the chain's kernels. */
function macsPerStep(chain) {
  return chain
    .flatMap((layer) => {
      const kind = layer.getClassName();
      if (RECURRENT.has(kind)) return [layer.cell.kernel, layer.cell.recurrentKernel];
      return kind === 'Dense' ? [layer.kernel] : [];
    })
    .reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Which ops `batch` streams of `model` step on (the one owner of that
 * choice): {ops: 'array' | 'direct' | 'tfjs', why, macs}. `ops`: 'auto' (the
 * crossover above, on tfjs-node; elsewhere tfjs's ops, not measured there),
 * 'array' or 'tensor' (TensorFlow's ops: direct on tfjs-node, tfjs's
 * elsewhere) as asked. A refused model throws "cannot stream: ...".
 */
function streamOpsFor(tf, model, batch, ops = 'auto') {
  const why = streamRefusal(model);
  if (why) throw new Error(`cannot stream: ${why}`);
  if (!['auto', 'array', 'tensor'].includes(ops)) {
    throw new Error(`streams: ops must be auto, array or tensor, got '${ops}'`);
  }
  const { chain } = chainOf(model);
  const macs = batch * macsPerStep(chain);
  const tensorOps = tf.getBackend() === 'tensorflow' ? 'direct' : 'tfjs';
  const noArray = arrayRefusal(chain);
  if (ops === 'array') {
    if (noArray) throw new Error(`streams: no array ops for this model: ${noArray}`);
    return { ops: 'array', why: 'asked for', macs };
  }
  if (ops === 'tensor') return { ops: tensorOps, why: 'asked for', macs };
  if (tensorOps !== 'direct')
    return { ops: tensorOps, why: 'array ops run on tfjs-node only', macs };
  if (noArray) return { ops: tensorOps, why: noArray, macs };
  return macs <= ARRAY_MACS_LIMIT
    ? { ops: 'array', why: `${macs} multiply-adds a step <= ${ARRAY_MACS_LIMIT}`, macs }
    : { ops: tensorOps, why: `${macs} multiply-adds a step > ${ARRAY_MACS_LIMIT}`, macs };
}

/** The tensor streams' core (cells.js on ops.js's ops): as arrayCore (array_stream.js). */
function tensorCore(tf, chain, recurrent, batch) {
  const zeroState = () =>
    recurrent.map((layer) => {
      const n = layer.getClassName() === 'LSTM' ? 2 : 1;
      return Array.from({ length: n }, () => tf.keep(tf.zeros([batch, layer.cell.units])));
    });
  let states = zeroState();
  const replace = (next) => {
    states.flat().forEach((t) => t.dispose());
    states = next;
  };

  const feed = (x) => {
    const { output, next } = tf.tidy(() => {
      const ops = opsFor(tf);
      let current = x;
      let mask = null;
      const after = [];
      for (const layer of chain) {
        const kind = layer.getClassName();
        if (RECURRENT.has(kind)) {
          const run = recurrentChunk(tf, ops, layer, current, states[after.length], mask);
          after.push(run.state);
          current = run.output;
          // a last-output layer passes no mask on (Keras's RNN neither)
          if (!layer.returnSequences) mask = null;
        } else if (MASKING.has(kind)) {
          ({ y: current, mask } = maskingChunk(tf, layer, current));
        } else {
          current = perStepChunk(tf, layer, current);
        }
      }
      return { output: current, next: after };
    });
    replace(next.map((state) => state.map((t) => tf.keep(t))));
    return output;
  };

  const zero = (rows) => {
    if (rows == null) {
      replace(zeroState());
      return;
    }
    const next = tf.tidy(() => {
      const keep = new Array(batch).fill(true);
      rows.forEach((r) => {
        keep[r] = false;
      });
      const kept = tf.tensor2d(keep, [batch, 1], 'bool');
      return states.map((state) =>
        state.map((t) => tf.where(tf.broadcastTo(kept, t.shape), t, tf.zerosLike(t))),
      );
    });
    replace(next.map((state) => state.map((t) => tf.keep(t))));
  };

  return {
    feed,
    zero,
    state: () => states.map((state) => state.map((t) => tf.clone(t))),
    load: (given) => replace(given.map((state) => state.map((t) => tf.keep(tf.clone(t))))),
    dispose: () => replace([]),
  };
}

/**
 * Opens `batch` streams on `model` (a tf.LayersModel that streamRefusal
 * accepts; it throws "cannot stream: <reason>" otherwise), all at the zero
 * state:
 *   feed(x)        x [N, T, F] (token ids [N, T]) -> each step's output
 *                  [N, T, ...] (the caller disposes it); the state moves on
 *   step(x)        x [N, F] (ids [N]) -> this step's output [N, ...]
 *   reset(rows?)   the zero state for those streams (all when none are given)
 *   getState()     [[h] or [h, c] per recurrent layer], copies the caller owns
 *   setState(s)    the state from such a list (copied)
 *   dispose()
 * `returnsSequences`: whether the model's own output is every step's (else
 * the step outputs are its output "if the sequence ended here"). `ops`
 * ('auto', 'array', 'tensor'): which ops step them (streamOpsFor); the
 * streams say which ran in `ops` ('array', 'direct', 'tfjs') and `opsWhy`.
 * Array streams copy the weights when they open: after setWeights, open
 * new streams (tensor streams read the variables at every call).
 */
function openStreams(tf, model, { batch, ops = 'auto' }) {
  if (!(Number.isInteger(batch) && batch > 0)) {
    streamOpsFor(tf, model, 1, ops); // a refused model says so first
    throw new Error(`streams: batch must be a positive integer, got ${batch}`);
  }
  const choice = streamOpsFor(tf, model, batch, ops);
  const { chain } = chainOf(model);
  const recurrent = chain.filter((layer) => RECURRENT.has(layer.getClassName()));
  const stepShape = model.inputs[0].shape.slice(2); // [F], or [] for token ids
  const core =
    choice.ops === 'array' ? arrayCore(tf, chain, batch) : tensorCore(tf, chain, recurrent, batch);
  const widths = recurrent.map((layer) =>
    new Array(layer.getClassName() === 'LSTM' ? 2 : 1).fill(layer.cell.units),
  );
  let open = true;
  const checkOpen = () => {
    if (!open) throw new Error('streams: used after dispose()');
  };

  const feed = (x) => {
    checkOpen();
    const want = [batch, null, ...stepShape];
    const fits =
      x.rank === want.length &&
      x.shape[0] === batch &&
      x.shape.slice(2).every((d, i) => stepShape[i] == null || d === stepShape[i]);
    if (!fits || x.shape[1] < 1) {
      throw new Error(
        `streams: a chunk of shape [${x.shape}] does not fit ${batch} stream(s) of steps [${stepShape.map((d) => d ?? 'any')}]`,
      );
    }
    return core.feed(x);
  };

  const step = (x) => {
    if (core.step) {
      checkOpen();
      const fits =
        x.rank === stepShape.length + 1 &&
        x.shape[0] === batch &&
        x.shape.slice(1).every((d, i) => stepShape[i] == null || d === stepShape[i]);
      if (!fits) {
        throw new Error(
          `streams: a step of shape [${x.shape}] does not fit ${batch} stream(s) of steps [${stepShape.map((d) => d ?? 'any')}]`,
        );
      }
      return core.step(x);
    }
    const chunk = tf.expandDims(x, 1);
    try {
      const out = feed(chunk);
      const squeezed = tf.squeeze(out, [1]);
      out.dispose();
      return squeezed;
    } finally {
      chunk.dispose();
    }
  };

  const reset = (rows = null) => {
    checkOpen();
    if (rows != null) {
      const bad = rows.filter((r) => !(Number.isInteger(r) && r >= 0 && r < batch));
      if (bad.length) throw new Error(`streams: no stream ${bad[0]} (0 to ${batch - 1})`);
    }
    core.zero(rows);
  };

  const getState = () => {
    checkOpen();
    return core.state();
  };

  const setState = (given) => {
    checkOpen();
    const fits =
      Array.isArray(given) &&
      given.length === widths.length &&
      given.every(
        (state, i) =>
          Array.isArray(state) &&
          state.length === widths[i].length &&
          state.every((t, j) => t.shape.join() === [batch, widths[i][j]].join()),
      );
    if (!fits) {
      const shapes = widths.map((state) => state.map((w) => `[${batch},${w}]`).join(' '));
      throw new Error(
        `streams: a state must be one list per recurrent layer: ${shapes.join(', ')}`,
      );
    }
    core.load(given);
  };

  const dispose = () => {
    if (open) core.dispose();
    open = false;
  };

  return {
    batch,
    returnsSequences: recurrent[recurrent.length - 1].returnSequences,
    ops: choice.ops,
    opsWhy: choice.why,
    feed,
    step,
    reset,
    getState,
    setState,
    dispose,
  };
}

module.exports = { openStreams, streamRefusal, streamOpsFor, ARRAY_MACS_LIMIT };
