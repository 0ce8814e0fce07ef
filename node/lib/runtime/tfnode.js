'use strict';
// Loads @tensorflow/tfjs-node (the native TensorFlow backend), quietly, with
// tfjs-bridge's layers installed, and says what it is running on. Every Node
// script of the project gets `tf` from here.
//
// The TensorFlow library in the Python wheel (which the addon links to) prints
// CUDA-factory and "computation placer" lines on fd 2 from its C++ static
// initialisers while it loads, before TF_CPP_MIN_LOG_LEVEL is read: a wall of
// GPU errors on a CPU-only machine before anything of ours. So fd 2 points at
// /dev/null while the addon loads, and back at the real stderr after; errors
// (ours, tfjs's, TensorFlow's at run time) go to stderr as usual.
// TFJS_BRIDGE_DEBUG=1 keeps the start-up lines.
//
// ONEDNN_MAX_CPU_ISA=AVX2 in the environment narrows which TensorFlow
// matMuls can corrupt the heap when a signal arrives (oneDNN issue #4845;
// see layers/tf_direct.js and docs/performance.md); it is not set here
// because it cost the SavedModel paths up to 45 % at B=256.
process.env.TF_CPP_MIN_LOG_LEVEL = process.env.TF_CPP_MIN_LOG_LEVEL || '3';

const fs = require('fs');
const { installKerasLayers } = require('../layers');
const { installLegacyUtil } = require('./legacy_util');
const { withStderrHidden } = require('./stderr');

// Before tfjs-node: the util.is* helpers it calls, on Node 22 and 24 (legacy_util.js).
const legacyUtil = installLegacyUtil();

function loadTfjsNode() {
  try {
    return withStderrHidden(() => require('@tensorflow/tfjs-node'));
  } catch (err) {
    const first = String(err.message).split('\n')[0];
    const fix = 'run `make setup` (it compiles the addon against the Python TensorFlow)';
    throw new Error(`@tensorflow/tfjs-node failed to load (${first}): ${fix}`, { cause: err });
  }
}

/**
 * TensorFlow logs info lines through absl on fd 2, whatever
 * TF_CPP_MIN_LOG_LEVEL says: "MLIR V1 optimization pass is not enabled" when
 * a SavedModel's session is made, and "XLA service … initialized" and
 * "Compiled cluster using XLA!" at an XLA model's first run (once a process).
 * Both native calls are synchronous and report failures as exceptions, so
 * fd 2 is hidden around the load and each model's first run only.
 */
function quietSavedModels(backend) {
  const { loadSavedModelMetaGraph: load, runSavedModel: run } = backend;
  const ran = new Set();
  backend.loadSavedModelMetaGraph = function (...args) {
    return withStderrHidden(() => load.apply(this, args));
  };
  backend.runSavedModel = function (id, ...args) {
    if (ran.has(id)) return run.call(this, id, ...args);
    ran.add(id);
    return withStderrHidden(() => run.call(this, id, ...args));
  };
}

const tf = loadTfjsNode();
if (tf.getBackend() === 'tensorflow') quietSavedModels(tf.backend());
installKerasLayers(tf);

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
    abi: process.versions.modules,
    legacyUtil,
    tfjs: tf.version.tfjs,
    tfjsNode: tf.version['tfjs-node'],
    backend,
    tensorflow: binding ? binding.TF_Version : null,
    libtensorflow: loadedLibtensorflow(),
  };
}

module.exports = { tf, runtimeInfo };
