'use strict';
// Loading a converted model folder in tfjs-node, in each of its formats, behind
// one predict(tensor) -> Promise<tensor> interface.
const fs = require('fs');
const path = require('path');

const FORMATS = {
  layers: 'tfjs_layers/model.json',
  graph: 'tfjs_graph/model.json',
  saved_model: 'saved_model',
};

function readManifest(modelDir) {
  const file = path.join(modelDir, 'manifest.json');
  if (!fs.existsSync(file)) throw new Error(`${file}: no manifest: train and convert the model first`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${err.message})`);
  }
}

async function loadModel(tf, modelDir, format = 'layers') {
  if (!FORMATS[format]) throw new Error(`unknown format '${format}' (known: ${Object.keys(FORMATS).join(', ')})`);
  const where = path.resolve(modelDir, FORMATS[format]);
  if (!fs.existsSync(where)) {
    throw new Error(`${where}: not found: run \`tfjs-bridge convert\` for this model`);
  }
  if (format === 'layers') {
    const model = await tf.loadLayersModel(`file://${where}`);
    // predict() splits into batches of 32 by default; run the batch whole.
    return { format, predict: async (x) => model.predict(x, { batchSize: x.shape[0] }), model };
  }
  if (format === 'graph') {
    const model = await tf.loadGraphModel(`file://${where}`);
    const inputName = model.inputs[0].name;
    // A Keras RNN exported as a graph keeps its While loop, and execute()
    // refuses dynamic ops and asks for executeAsync(): we follow its advice once.
    const state = { async: false };
    const run = async (x) => {
      const feed = { [inputName]: x };
      let out;
      if (!state.async) {
        try {
          out = model.execute(feed);
        } catch (err) {
          if (!/executeAsync/.test(err.message)) throw err;
          state.async = true;
        }
      }
      if (state.async) out = await model.executeAsync(feed);
      return Array.isArray(out) ? out[0] : out;
    };
    return { format, predict: run, model, usesExecuteAsync: () => state.async };
  }
  const model = await tf.node.loadSavedModel(where, ['serve'], 'serving_default');
  const run = async (x) => {
    const out = model.predict({ input: x });
    return out instanceof tf.Tensor ? out : out.output;
  };
  return { format, predict: run, model };
}

module.exports = { FORMATS, loadModel, readManifest };
