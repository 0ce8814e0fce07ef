'use strict';
// Loads @tensorflow/tfjs-node (the native TensorFlow backend) and says what
// it is running on. Every Node script of the project gets `tf` from here.
process.env.TF_CPP_MIN_LOG_LEVEL = process.env.TF_CPP_MIN_LOG_LEVEL || '3';
// ONEDNN_MAX_CPU_ISA=AVX2 in the environment narrows which TensorFlow
// matMuls can corrupt the heap when a signal arrives (oneDNN issue #4845;
// see tf_direct.js and the README's Performance section); it is not set
// here because it cost the SavedModel paths up to 45 % at B=256.

const fs = require('fs');

function loadTfjsNode() {
  try {
    return require('@tensorflow/tfjs-node');
  } catch (err) {
    const first = String(err.message).split('\n')[0];
    const fix = 'run `make setup` (it compiles the addon against the Python TensorFlow)';
    throw new Error(`@tensorflow/tfjs-node failed to load (${first}): ${fix}`);
  }
}

const tf = loadTfjsNode();
// Keras's default GRU and Keras 3's hard_sigmoid, which tfjs-layers lacks.
require('./keras_compat').installKerasCompat(tf);

/** The shared libraries this process mapped whose name mentions libtensorflow. */
function loadedLibtensorflow() {
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  const paths = new Set();
  for (const line of maps.split('\n')) {
    const file = line.slice(line.indexOf('/'));
    if (line.includes('/') && /libtensorflow[^/]*\.so/.test(file)) paths.add(fs.realpathSync(file));
  }
  return [...paths].sort();
}

/** Versions and the backend actually in use, for `tfjs-bridge doctor`. */
function runtimeInfo() {
  const backend = tf.getBackend();
  const binding = backend === 'tensorflow' ? tf.backend().binding : null;
  return {
    node: process.versions.node,
    napi: process.versions.napi,
    tfjs: tf.version.tfjs,
    tfjsNode: tf.version['tfjs-node'],
    backend,
    tensorflow: binding ? binding.TF_Version : null,
    libtensorflow: loadedLibtensorflow(),
  };
}

module.exports = { tf, runtimeInfo };
