'use strict';
// The tfjs backends a model can run on in Node, each in a process of its own:
//   tensorflow  @tensorflow/tfjs-node, the native TensorFlow (linked to the Python TF)
//   cpu         @tensorflow/tfjs's pure-JavaScript CPU backend (what the tutorials install)
//   wasm        @tensorflow/tfjs-backend-wasm (its .wasm binary ships in the npm package)
//   onnxruntime onnxruntime-node, no tfjs at all (optional: `make onnx`)
//   litert      LiteRT.js (@litertjs/core) on WASM, no tfjs either (litert_node.js; named only)
// Loading tfjs-node makes it the backend of every tfjs in the process, so the
// others must be chosen in a process that never requires it.
const { installKerasLayers } = require('../layers');
const { BACKENDS: KNOWN } = require('./vocabulary');

const BACKENDS = Object.keys(KNOWN);

/** onnxruntime-node, or a clear error saying how to get it. */
function loadOnnxRuntime() {
  try {
    return require('onnxruntime-node');
  } catch (err) {
    const { package: name, install } = KNOWN.onnxruntime;
    throw new Error(`${name} is not installed: run \`${install}\` (an optional extra)`, {
      cause: err,
    });
  }
}

/**
 * The tfjs module set to that backend; for onnxruntime, {ort}, and for
 * litert, {litert, info}: no tfjs.
 */
async function loadBackend(name) {
  if (name === 'tensorflow') return require('./tfnode').tf;
  if (name === 'onnxruntime') return { ort: loadOnnxRuntime() };
  if (name === 'litert') return { litert: await require('./litert_node').loadLiteRtInNode() };
  if (!BACKENDS.includes(name))
    throw new Error(`unknown backend '${name}' (known: ${BACKENDS.join(', ')})`);
  // tfjs greets Node users with advice to install tfjs-node (console.warn):
  // running without it is the point here, so keep the greeting out of stderr.
  const warn = console.warn;
  console.warn = () => {};
  try {
    const tf = require('@tensorflow/tfjs');
    if (name === 'wasm') require('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend(name))) throw new Error(`the ${name} backend failed to initialise`);
    tf.tidy(() => tf.add(1, 1).dataSync());
    installKerasLayers(tf);
    return tf;
  } finally {
    console.warn = warn;
  }
}

module.exports = { BACKENDS, loadBackend, loadOnnxRuntime };
