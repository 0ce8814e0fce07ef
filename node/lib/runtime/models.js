'use strict';
// Loading a converted model folder in Node, in each of its formats, behind one
// interface: predict(xs, names) -> Promise<Tensor[]> with outputs named in
// `outputs`, in the order Python lists them (so the two sides can be compared
// by name). xs holds one tensor per model input; with several, `names` says
// which input each is (the model's signature, recorded in its manifest), and
// each format feeds them by name.
// Where each format lives in the folder is vocabulary.js's (FORMATS); how
// each loads is here (LOADERS):
//   layers           tf.loadLayersModel      any backend
//   graph            tf.loadGraphModel       any backend
//   saved_model      tf.node.loadSavedModel  tfjs-node only
//   saved_model_xla  the same, XLA-compiled  tfjs-node only
//   onnx             onnxruntime-node        the onnxruntime backend (`make onnx`)
const fs = require('fs');
const path = require('path');
const { readModelArtifacts, checkIntegrity } = require('../io/modelfiles');
const { readManifest } = require('../io/manifest');
const { FORMATS, formatPath } = require('./vocabulary');

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

async function loadLayers(tf, where) {
  const model = await tf.loadLayersModel(tf.io.fromMemory(readModelArtifacts(where)));
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
    const onlyBias =
      fused && fused.length === 1 && Buffer.from(fused[0], 'base64').toString() === 'BiasAdd';
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

async function loadGraph(tf, where) {
  const artifacts = readModelArtifacts(where);
  if (tf.getBackend() === 'wasm')
    artifacts.modelTopology = unfuseTensorBias(artifacts.modelTopology);
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
  const inputs = sortedSignature(artifacts.signature && artifacts.signature.inputs);
  const outputs = sortedSignature(artifacts.signature && artifacts.signature.outputs);
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

async function loadSavedModel(tf, where, format) {
  if (!tf.node) throw new Error(`the ${format} format needs tfjs-node (the tensorflow backend)`);
  const { marker, made_by: madeBy } = FORMATS[format];
  if (!fs.existsSync(path.join(where, marker))) {
    throw new Error(`${where}: no ${marker}: run \`${madeBy}\` for this model`);
  }
  const metaGraphs = await tf.node.getMetaGraphsFromSavedModel(where);
  const serving = metaGraphs
    .map((m) => m.signatureDefs && m.signatureDefs.serving_default)
    .find(Boolean);
  if (!serving) throw new Error(`${where}: the SavedModel has no serving_default signature`);
  const inputKeys = Object.keys(serving.inputs).sort();
  const outputs = Object.keys(serving.outputs).sort();
  const model = await tf.node.loadSavedModel(where, ['serve'], 'serving_default');
  return {
    model,
    outputs,
    predict: async (xs, names) => {
      const ordered = byName(xs, names, inputKeys, where);
      const y = model.predict(Object.fromEntries(inputKeys.map((key, i) => [key, ordered[i]])));
      return y instanceof tf.Tensor ? [y] : outputs.map((key) => y[key]);
    },
    dispose: () => model.dispose(),
  };
}

/**
 * An ONNX model in onnxruntime-node. No tfjs tensors: run(input) takes and
 * returns plain {dtype, shape, data} arrays, which the worker passes through.
 */
async function loadOnnx(ort, where) {
  const session = await ort.InferenceSession.create(where, { graphOptimizationLevel: 'all' });
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

const LOADERS = {
  layers: loadLayers,
  graph: loadGraph,
  saved_model: loadSavedModel,
  saved_model_xla: loadSavedModel,
};

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

/** tf: a tfjs module, or {ort} (backends.js) for the onnx format. */
async function loadModel(tf, modelDir, format = 'layers') {
  if (!Object.hasOwn(FORMATS, format)) {
    throw new Error(`unknown format '${format}' (known: ${Object.keys(FORMATS).join(', ')})`);
  }
  const where = formatPath(modelDir, format);
  if (!fs.existsSync(where)) {
    throw new Error(`${where}: not found: run \`${FORMATS[format].made_by}\` for this model`);
  }
  // Refuse corrupted or tampered files before any of them is parsed.
  checkIntegrity(modelDir, FORMATS[format].folder, readManifest(modelDir));
  if ((format === 'onnx') !== Boolean(tf.ort)) {
    throw new Error(
      format === 'onnx'
        ? 'the onnx format runs on the onnxruntime backend'
        : `the ${format} format needs tfjs, not onnxruntime`,
    );
  }
  if (format === 'onnx') return { format, ...(await loadOnnx(tf.ort, where)) };
  return { format, ...(await LOADERS[format](tf, where, format)) };
}

module.exports = { loadModel, bind, kerasOutputNames };
