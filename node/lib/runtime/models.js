'use strict';
// Loading a converted model folder in Node, in each of its formats, behind one
// interface: predict(xs, names) -> Promise<Tensor[]> with outputs named in
// `outputs`, in the order Python lists them (so the two sides can be compared
// by name). xs holds one tensor per model input; with several, `names` says
// which input each is (the model's signature, recorded in its manifest), and
// each format feeds them by name.
// Where each format lives in the folder is vocabulary.js's (FORMATS); how
// each loads is here (LOADERS), how a loaded tfjs model runs is runners.js's
// (shared with the browser page):
//   layers           tf.loadLayersModel      any backend
//   graph            tf.loadGraphModel       any backend
//   saved_model      tf.node.loadSavedModel  tfjs-node only
//   saved_model_xla  the same, XLA-compiled  tfjs-node only
//   onnx             onnxruntime-node        the onnxruntime backend (`make onnx`)
//   tflite           LiteRT.js               the litert backend (litert_node.js)
const fs = require('fs');
const path = require('path');
const { readModelArtifacts, checkIntegrity } = require('../io/modelfiles');
const { readManifest } = require('../io/manifest');
const { FORMATS, formatPath } = require('./vocabulary');
const { tfliteFileRunner } = require('./litert_node');
const { feedEachTensorOnce } = require('../layers');
const {
  byName,
  layersRunner,
  graphArtifactsFor,
  graphRunner,
  onnxRunner,
  bind,
  kerasOutputNames,
} = require('./runners');

async function loadLayers(tf, where) {
  const model = await tf.loadLayersModel(tf.io.fromMemory(readModelArtifacts(where)));
  return layersRunner(feedEachTensorOnce(tf, model), where);
}

/**
 * `topology` (a layers model.json's modelTopology) with the time axis of
 * every input shape freed: [batch, T, ...] -> [batch, null, ...]. The same
 * layers and weights then run on the first k steps of a sequence: verify's
 * prefix check of an ill-conditioned model (py/tfjs_bridge/parity/prefixes.py).
 */
function freeTimeAxis(topology) {
  if (Array.isArray(topology)) return topology.map(freeTimeAxis);
  if (!topology || typeof topology !== 'object') return topology;
  const out = {};
  for (const [key, value] of Object.entries(topology)) {
    const shape = ['batch_input_shape', 'batch_shape'].includes(key) && Array.isArray(value);
    out[key] =
      shape && value.length >= 3 ? [value[0], null, ...value.slice(2)] : freeTimeAxis(value);
  }
  return out;
}

/** The layers model with its time axis freed (freeTimeAxis): verify's prefix check only. */
async function loadLayersFreeTime(tf, where) {
  const artifacts = readModelArtifacts(where);
  artifacts.modelTopology = freeTimeAxis(artifacts.modelTopology);
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  return layersRunner(feedEachTensorOnce(tf, model), where);
}

async function loadGraph(tf, where) {
  const artifacts = graphArtifactsFor(tf, readModelArtifacts(where));
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
  return graphRunner(model, artifacts.signature, where);
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

/** An ONNX model in onnxruntime-node (runners.js's onnxRunner, shared with ONNX Runtime Web's page). */
async function loadOnnx(ort, where) {
  return onnxRunner(ort, where, where);
}

const LOADERS = {
  layers: loadLayers,
  graph: loadGraph,
  saved_model: loadSavedModel,
  saved_model_xla: loadSavedModel,
};

/**
 * Where a format lives in a model folder, once it is known to be there and
 * its files are what manifest.json recorded (corrupted or tampered files are
 * refused before any of them is parsed). The browser driver checks so too.
 */
function checkedFormatPath(modelDir, format) {
  if (!Object.hasOwn(FORMATS, format)) {
    throw new Error(`unknown format '${format}' (known: ${Object.keys(FORMATS).join(', ')})`);
  }
  const where = formatPath(modelDir, format);
  if (!fs.existsSync(where)) {
    throw new Error(`${where}: not found: run \`${FORMATS[format].made_by}\` for this model`);
  }
  checkIntegrity(modelDir, FORMATS[format].folder, readManifest(modelDir));
  return where;
}

/**
 * tf: a tfjs module, or {ort} / {litert} (backends.js) for the onnx / tflite format. `freeTime`:
 * the layers model with its time axis freed (loadLayersFreeTime).
 */
async function loadModel(tf, modelDir, format = 'layers', { freeTime = false } = {}) {
  const where = checkedFormatPath(modelDir, format);
  if (freeTime) {
    if (format !== 'layers')
      throw new Error(`only the layers model frees its time axis, not ${format}`);
    return { format, ...(await loadLayersFreeTime(tf, where)) };
  }
  if (tf.litert) {
    if (format !== 'tflite')
      throw new Error(`the litert backend runs the tflite format, not ${format}`);
    return { format, ...(await tfliteFileRunner(tf.litert.litert, where)) };
  }
  if ((format === 'onnx') !== Boolean(tf.ort)) {
    throw new Error(
      format === 'onnx'
        ? 'the onnx format runs on the onnxruntime backend'
        : `the ${format} format needs tfjs, not onnxruntime`,
    );
  }
  if (format === 'onnx') return { format, ...(await loadOnnx(tf.ort, where)) };
  if (!Object.hasOwn(LOADERS, format)) {
    throw new Error(
      `the ${format} format does not run on tfjs (it runs in LiteRT: LiteRT.js's own worker, ` +
        "`--runtime litert-node-wasm`, or Python's TFLite interpreter)",
    );
  }
  return { format, ...(await LOADERS[format](tf, where, format)) };
}

module.exports = { loadModel, checkedFormatPath, bind, kerasOutputNames, freeTimeAxis };
