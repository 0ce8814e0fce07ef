'use strict';
// A stream's steps on plain Float32Arrays (array_ops.js): the same chain as
// stream.js's tensor steps, the same equations (cells.js) and the same
// prepared weights (loop_weights.js), copied to typed arrays once when the
// streams open; the input projection, the Embedding lookup, the masks and
// the Dense heads done the same way. The state lives in typed arrays too,
// so a step makes no TensorFlow op at all but the input read and the output
// made. Which streams run here: stream.js's choice (streamOpsFor).
const { arrayOps, matrix, fromTensor, ACTIVATIONS } = require('./array_ops');
const { gruStep, lstmStep, simpleStep, CELLS } = require('./cells');
const { cachedLoopWeights, foldsHardSigmoid } = require('./loop_weights');

const RECURRENT = new Set(['GRU', 'LSTM', 'SimpleRNN']);
// Per-step layers the array path computes (dropout and noise are identities at inference).
const IDENTITIES = new Set([
  'Dropout',
  'AlphaDropout',
  'GaussianDropout',
  'GaussianNoise',
  'SpatialDropout1D',
]);

const activationName = (activation) => activation.getClassName();

/** The rank of the input `layer` was built for ([B, T, ...]). */
function builtInputRank(layer) {
  const shapes = layer.inboundNodes[0].inputShapes;
  return (Array.isArray(shapes[0]) ? shapes[0] : shapes).length;
}

/** Why the array path cannot run this (streamable) chain, or null when it can. */
function arrayRefusal(chain) {
  const stepRank = builtInputRank(chain[0]) - 2;
  if (stepRank > 1) return `a step of rank ${stepRank} (the array ops take features or one id)`;
  for (const layer of chain) {
    const kind = layer.getClassName();
    const acts = [];
    if (RECURRENT.has(kind)) {
      acts.push(layer.cell.activation);
      if (kind !== 'SimpleRNN' && !foldsHardSigmoid(layer))
        acts.push(layer.cell.recurrentActivation);
    } else if (kind === 'Dense' || kind === 'Activation') {
      acts.push(layer.activation);
    } else if (!IDENTITIES.has(kind) && kind !== 'Embedding' && kind !== 'Masking') {
      return `layer ${layer.name} (${kind}) has no array step`;
    }
    const odd = acts.map(activationName).find((name) => !Object.hasOwn(ACTIVATIONS, name));
    if (odd) return `layer ${layer.name} (${kind}): activation ${odd} has no array step`;
  }
  return null;
}

/** One recurrent layer's step on matrices, its weights copied once. */
function recurrentStepper(tf, ops, layer) {
  const kind = layer.getClassName();
  const { cell } = layer;
  const act = ACTIVATIONS[activationName(cell.activation)];
  if (kind === 'SimpleRNN') {
    const kernel = fromTensor(cell.kernel.read());
    const bias = cell.useBias ? fromTensor(cell.bias.read()) : null;
    const weights = { recurrent: fromTensor(cell.recurrentKernel.read()) };
    return {
      width: cell.units,
      states: 1,
      step: (x, [h]) => {
        const projected = bias ? ops.add(ops.matMul(x, kernel), bias) : ops.matMul(x, kernel);
        return [simpleStep(ops, { act }, weights, projected, h).h];
      },
    };
  }
  const prepared = cachedLoopWeights(tf, layer, [layer], kind);
  const copy = (t) => (t ? fromTensor(t) : null);
  const weights = {
    recurrent: copy(prepared.recurrent),
    recurrentBias: copy(prepared.recurrentBias),
    recurrentGates: copy(prepared.recurrentGates),
    recurrentCandidate: copy(prepared.recurrentCandidate),
  };
  const kernel = fromTensor(prepared.kernels[0]);
  const bias = copy(prepared.inputBiases[0]);
  const { width } = prepared;
  const params = {
    act,
    recAct: foldsHardSigmoid(layer)
      ? ops.clip01
      : ACTIVATIONS[activationName(cell.recurrentActivation)],
    resetAfter: Boolean(cell.resetAfter),
    width,
  };
  const sizes = CELLS[kind].parts.map((part) => part * width);
  const project = (x) => (bias ? ops.add(ops.matMul(x, kernel), bias) : ops.matMul(x, kernel));
  if (kind === 'LSTM') {
    return {
      width,
      states: 2,
      step: (x, [h, c]) => {
        const next = lstmStep(ops, params, weights, project(x), h, c);
        return [next.h, next.c];
      },
    };
  }
  return {
    width,
    states: 1,
    step: (x, [h]) => [gruStep(ops, params, weights, ops.split(project(x), sizes), h).h],
  };
}

/** A per-step layer (Dense, Activation, identities) on a matrix. */
function perStepStepper(ops, layer) {
  const kind = layer.getClassName();
  if (IDENTITIES.has(kind)) return (x) => x;
  const act = ACTIVATIONS[activationName(layer.activation)];
  if (kind === 'Activation') return act;
  const kernel = fromTensor(layer.kernel.read());
  const bias = layer.useBias ? fromTensor(layer.bias.read()) : null;
  return (x) => act(bias ? ops.add(ops.matMul(x, kernel), bias) : ops.matMul(x, kernel));
}

/**
 * The array streams' core for openStreams (stream.js), `batch` rows, the
 * chain accepted by streamRefusal and arrayRefusal:
 *   feed(x [N, T, ...]) -> every step's output, a tensor [N, T, C]
 *   step(x [N, ...])     -> this step's output [N, C]
 *   zero(rows)           those rows' state set to zero (all when null)
 *   state() / load(s)    the state as tensors [N, W] / from such tensors
 */
function arrayCore(tf, chain, batch) {
  const ops = arrayOps();
  const steps = chain.map((layer) => {
    const kind = layer.getClassName();
    if (RECURRENT.has(kind)) return { kind, recurrent: recurrentStepper(tf, ops, layer), layer };
    if (kind === 'Embedding') {
      const table = fromTensor(layer.embeddings.read());
      return { kind, table, maskZero: Boolean(layer.maskZero) };
    }
    if (kind === 'Masking') return { kind, maskValue: layer.maskValue };
    return { kind, run: perStepStepper(ops, layer) };
  });
  const recurrent = steps.filter((s) => s.recurrent);
  const zeros = () =>
    recurrent.map(({ recurrent: r }) =>
      Array.from({ length: r.states }, () => matrix(batch, r.width)),
    );
  let states = zeros();

  /** Token ids [N] -> [N, E] rows of the table, and the mask (id != 0) when it masks. */
  const lookup = ({ table, maskZero }, ids) => {
    const out = matrix(ids.length, table.cols);
    ids.forEach((id, i) => {
      if (!(Number.isInteger(id) && id >= 0 && id < table.rows)) {
        throw new Error(`streams: token id ${id} outside the vocabulary (0 to ${table.rows - 1})`);
      }
      out.data.set(table.data.subarray(id * table.cols, (id + 1) * table.cols), i * table.cols);
    });
    return { y: out, mask: maskZero ? Uint8Array.from(ids, (id) => (id !== 0 ? 1 : 0)) : null };
  };

  /** Keras's Masking: a step whose features all equal maskValue is masked, and zeroed. */
  const masking = ({ maskValue }, x) => {
    const mask = new Uint8Array(x.rows);
    const out = matrix(x.rows, x.cols);
    for (let i = 0; i < x.rows; i++) {
      const row = x.data.subarray(i * x.cols, (i + 1) * x.cols);
      mask[i] = row.some((v) => v !== maskValue) ? 1 : 0;
      if (mask[i]) out.data.set(row, i * x.cols);
    }
    return { y: out, mask };
  };

  /** One step of every row through the chain: the output matrix; the states move on. */
  const oneStep = (input) => {
    let current = input;
    let mask = null;
    let r = 0;
    for (const s of steps) {
      if (s.recurrent) {
        const before = states[r];
        const next = s.recurrent.step(current, before);
        // a padded step keeps the state (and repeats the output), as the whole loop does
        states[r] = mask ? next.map((n, j) => ops.select(mask, n, before[j])) : next;
        current = states[r][0];
        if (!s.layer.returnSequences) mask = null; // a last-output layer passes no mask on
        r += 1;
      } else if (s.kind === 'Embedding') {
        ({ y: current, mask } = lookup(s, current));
      } else if (s.kind === 'Masking') {
        ({ y: current, mask } = masking(s, current));
      } else {
        current = s.run(current);
      }
    }
    return current;
  };

  /** values of x [n, t, ...] (ids: [n, t]) -> every step's output, [n, t, width] flat. */
  const run = (values, n, t, features, tokens) => {
    let out = null;
    let width = 0;
    for (let step = 0; step < t; step++) {
      let input;
      if (tokens) {
        input = Array.from({ length: n }, (_, i) => values[i * t + step]);
      } else {
        input = matrix(n, features);
        for (let i = 0; i < n; i++) {
          const from = (i * t + step) * features;
          input.data.set(values.subarray(from, from + features), i * features);
        }
      }
      const y = oneStep(input);
      if (!out) {
        width = y.cols;
        out = new Float32Array(n * t * width);
      }
      for (let i = 0; i < n; i++) {
        out.set(y.data.subarray(i * width, (i + 1) * width), (i * t + step) * width);
      }
    }
    return { out, width };
  };

  const feed = (x) => {
    const [n, t] = x.shape;
    const tokens = x.rank === 2;
    const features = tokens ? 1 : x.shape.slice(2).reduce((a, b) => a * b, 1);
    const { out, width } = run(x.dataSync(), n, t, features, tokens);
    return tf.tensor3d(out, [n, t, width]);
  };

  // one step, x [n, ...step]: no reshape ops around it (each a TensorFlow call)
  const step = (x) => {
    const [n] = x.shape;
    const tokens = x.rank === 1;
    const features = tokens ? 1 : x.shape.slice(1).reduce((a, b) => a * b, 1);
    const { out, width } = run(x.dataSync(), n, 1, features, tokens);
    return tf.tensor2d(out, [n, width]);
  };

  const zero = (rows) => {
    if (rows == null) {
      states = zeros();
      return;
    }
    states
      .flat()
      .forEach((m) => rows.forEach((row) => m.data.fill(0, row * m.cols, (row + 1) * m.cols)));
  };

  return {
    feed,
    step,
    zero,
    // copies: zero() writes into the arrays in place, and tfjs keeps a typed array it is given
    state: () =>
      states.map((state) => state.map((m) => tf.tensor2d(m.data.slice(), [m.rows, m.cols]))),
    load: (given) => {
      states = given.map((state) => state.map((t) => fromTensor(t)));
    },
    dispose: () => {
      states = [];
    },
  };
}

module.exports = { arrayCore, arrayRefusal };
