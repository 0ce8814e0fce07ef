'use strict';
// A loaded tfjs model behind one interface, with no file system and no Node
// built-in: the part of models.js that a web page runs too. The browser
// bundle (lib/browser/bundle.js) takes this very file, so a page names,
// orders and runs a model's inputs and outputs as Node does.
//   runner: {model, outputs, predict(xs, names) -> Promise<Tensor[]>, dispose()}
// `outputs` are named in the order Python lists them (so the two sides can be
// compared by name); with several inputs, `names` says which input each x is.

/** Signature entries ({key: {name}}) as [{key, name}] sorted by key, as Python sorts them. */
const sortedSignature = (entries) =>
  Object.keys(entries || {})
    .sort()
    .map((key) => ({ key, name: entries[key].name }));

/**
 * Keras's output_names: each output layer's name, made unique as Keras makes
 * it (a layer with three outputs, such as an LSTM with return_state, gives
 * lstm_3, lstm_3_1, lstm_3_2).
 */
function kerasOutputNames(layerNames) {
  const taken = new Set();
  const counts = new Map();
  return layerNames.map((name) => {
    let proposal = name;
    while (taken.has(proposal)) {
      const count = counts.get(name) || 1;
      proposal = `${name}_${count}`;
      counts.set(name, count + 1);
    }
    taken.add(proposal);
    return proposal;
  });
}

/**
 * The tensors in the order `order` (the model's input names) lists them, from
 * xs named by `names`; one input needs no name.
 */
function byName(xs, names, order, where) {
  if (xs.length !== order.length) {
    throw new Error(`${where}: the model takes ${order.length} input(s), got ${xs.length}`);
  }
  if (xs.length === 1) return xs;
  if (!names || names.length !== xs.length) {
    throw new Error(
      `${where}: ${xs.length} inputs need their names (the model's: ${order.join(', ')})`,
    );
  }
  return order.map((name) => {
    const i = names.indexOf(name);
    if (i < 0) throw new Error(`${where}: no input named ${name} given (got ${names.join(', ')})`);
    return xs[i];
  });
}

/** A runner for a tf.LayersModel. */
function layersRunner(model, where) {
  return {
    model,
    outputs: kerasOutputNames(model.outputs.map((output) => output.sourceLayer.name)),
    // predict() splits into batches of 32 by default; run the batch whole.
    predict: async (xs, names) => {
      // (a Sequential loaded from JSON lists no inputNames until it is built)
      const order = model.inputs.map((t) => t.sourceLayer.name);
      const ordered = byName(xs, names, order, where);
      const input = ordered.length === 1 ? ordered[0] : ordered;
      const y = model.predict(input, { batchSize: ordered[0].shape[0] });
      return Array.isArray(y) ? y : [y];
    },
    dispose: () => model.dispose(),
  };
}

/**
 * The WASM backend's _FusedMatMul takes only a rank-1 bias, but the converter
 * also fuses `MatMul + Add(another MatMul)` (an LSTM's x·W + h·U) into one, and
 * WASM then fails ("only supports rank-1 bias"). Split those back into MatMul
 * and AddV2: the same arithmetic, in two kernels WASM has.
 */
function unfuseTensorBias(topology) {
  const nodes = topology.node;
  const ops = new Map(nodes.map((n) => [n.name, n.op]));
  const out = [];
  for (const node of nodes) {
    const fused =
      node.attr && node.attr.fused_ops && node.attr.fused_ops.list && node.attr.fused_ops.list.s;
    // (atob: the one base64 decoder both Node and a page have)
    const onlyBias = fused && fused.length === 1 && atob(fused[0]) === 'BiasAdd';
    const bias = node.input && node.input[2];
    if (
      node.op !== '_FusedMatMul' ||
      !onlyBias ||
      ops.get(String(bias).split(':')[0]) === 'Const'
    ) {
      out.push(node);
      continue;
    }
    const matmul = `${node.name}/unfused_matmul`;
    const { T, transpose_a: ta, transpose_b: tb } = node.attr;
    out.push({
      name: matmul,
      op: 'MatMul',
      input: node.input.slice(0, 2),
      attr: { T, transpose_a: ta, transpose_b: tb },
    });
    out.push({ name: node.name, op: 'AddV2', input: [matmul, bias], attr: { T } });
  }
  return { ...topology, node: out };
}

/** A graph model's artifacts as this backend can run them (WASM: see unfuseTensorBias). */
function graphArtifactsFor(tf, artifacts) {
  if (tf.getBackend() !== 'wasm') return artifacts;
  return { ...artifacts, modelTopology: unfuseTensorBias(artifacts.modelTopology) };
}

/** A runner for a tf.GraphModel; `signature` is the model.json's. */
function graphRunner(model, signature, where) {
  const inputs = sortedSignature(signature && signature.inputs);
  const outputs = sortedSignature(signature && signature.outputs);
  // Signature keys are the Keras input names; the graph's nodes, their values.
  const inputKeys = inputs.length ? inputs.map((i) => i.key) : model.inputs.map((i) => i.name);
  const inputNodes = inputs.length
    ? inputs.map((i) => i.name.replace(/:0$/, ''))
    : model.inputs.map((i) => i.name);
  const outputNodes = outputs.length ? outputs.map((o) => o.name.replace(/:0$/, '')) : undefined;
  // An RNN exported with its While loop makes execute() refuse and ask for
  // executeAsync(): we follow that advice once and keep to it.
  const state = { async: false };
  const run = async (xs, names) => {
    const ordered = byName(xs, names, inputKeys, where);
    const feed = Object.fromEntries(inputNodes.map((node, i) => [node, ordered[i]]));
    let out;
    if (!state.async) {
      try {
        out = model.execute(feed, outputNodes);
      } catch (err) {
        if (!/executeAsync/.test(err.message)) throw err;
        state.async = true;
      }
    }
    if (state.async) out = await model.executeAsync(feed, outputNodes);
    return Array.isArray(out) ? out : [out];
  };
  return {
    model,
    outputs: outputs.length ? outputs.map((o) => o.key) : model.outputs.map((o) => o.name),
    predict: run,
    usesExecuteAsync: () => state.async,
    dispose: () => model.dispose(),
  };
}

/**
 * An ONNX model in onnxruntime (onnxruntime-node in Node, onnxruntime-web in
 * a page: the same API), from `source` (a file path, or a URL in a page).
 * No tfjs tensors: run(input) takes and returns plain {dtype, shape, data}
 * arrays, which the worker passes through. `options`: the session's (a
 * page names its execution provider).
 */
async function onnxRunner(ort, source, where, options = {}) {
  const session = await ort.InferenceSession.create(source, {
    graphOptimizationLevel: 'all',
    ...options,
  });
  const outputs = [...session.outputNames].sort();
  // tf2onnx keeps the graph's input names, sometimes with a ':0'
  const inputKeys = session.inputNames.map((name) => name.replace(/:0$/, ''));
  return {
    model: session,
    outputs,
    run: async (arrays, names) => {
      const ordered = byName(arrays, names, inputKeys, where);
      const feeds = Object.fromEntries(
        session.inputNames.map((name, i) => {
          const { dtype, data, shape } = ordered[i];
          return [name, new ort.Tensor(dtype, data, shape)];
        }),
      );
      const result = await session.run(feeds);
      return outputs.map((key) => ({
        dtype: result[key].type,
        shape: result[key].dims.map(Number),
        data: result[key].data,
      }));
    },
    dispose: () => session.release(),
  };
}

/**
 * Inputs bound to a loaded model (any format, any backend): call() runs it
 * and returns plain {dtype, shape, data} outputs; release() frees the inputs.
 * `inputs` holds one {dtype, shape, data} per model input, named by `names`
 * when there are several. tfjs runners get tensors made once (and their
 * outputs disposed each call); ONNX runners take the arrays as they are.
 */
function bind(tf, runner, inputs, names = null) {
  if (runner.run) return { call: () => runner.run(inputs, names), release: () => {} };
  const xs = inputs.map((input) => tf.tensor(input.data, input.shape, input.dtype));
  return {
    call: async () => {
      const ys = await runner.predict(xs, names);
      try {
        // data() waits for the values: a timing covers the whole computation.
        const arrays = await Promise.all(ys.map((y) => y.data()));
        return ys.map((y, i) => ({ dtype: y.dtype, shape: y.shape, data: arrays[i] }));
      } finally {
        tf.dispose(ys);
      }
    },
    release: () => tf.dispose(xs),
  };
}

/**
 * The worker's bench loop, for a Node process and a page alike: `warmup`
 * untimed calls, then calls until `budget` ms are spent (at least minReps, at
 * most maxReps), each timed from the call to the values read back.
 */
async function timeCalls(call, { warmup = 3, budget = 2000, minReps = 5, maxReps = 200 } = {}) {
  const once = async () => {
    const started = performance.now();
    await call();
    return performance.now() - started;
  };
  const first = await once();
  for (let i = 1; i < warmup; i++) await once();
  const times = [];
  const until = performance.now() + budget;
  while (times.length < maxReps && (times.length < minReps || performance.now() < until)) {
    times.push(await once());
  }
  return { first_ms: first, ms: times };
}

/**
 * timeCalls's options from a bench request's fields (the worker protocol's
 * names); a field not given keeps timeCalls's default.
 */
function benchOptions({ warmup, budget_ms: budget, min_reps: minReps, max_reps: maxReps }) {
  const given = { warmup, budget, minReps, maxReps };
  return Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined));
}

module.exports = {
  kerasOutputNames,
  byName,
  layersRunner,
  unfuseTensorBias,
  graphArtifactsFor,
  graphRunner,
  onnxRunner,
  bind,
  timeCalls,
  benchOptions,
};
