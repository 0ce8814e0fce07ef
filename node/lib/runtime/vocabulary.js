'use strict';
// The names Python and Node share, as Node reads them: node/vocabulary.json,
// generated from py/tfjs_bridge/{folder/formats,runtime/runtimes,folder/parity_record}.py by
// `tfjs-bridge registry` (make test fails when it drifts). Nothing here is
// defined in Node:
//   FORMATS   format -> {folder, entry, marker, made_by}: where it lives in a model folder
//   BACKENDS  backend -> {package, optional, install}
//   ENGINE_BACKENDS  worker backends with no tfjs in the process ('litert': LiteRT.js
//             in Node) -> {package, optional, install}; ENGINE_RUNTIMES their paths
//   RUNTIMES  runtime (path) name -> {backend, format, description, default_rank}
//   BROWSER_RUNTIMES  a browser page's paths ('chromium-litert-wasm/tflite') ->
//             {backend (a BROWSER_BACKENDS key), format, description}
//   PARITY    parity.json: {file, version, statuses, cold_start_key}
//   BROWSERS  browser -> {env, executables, protocol, backends, display_backends, install}
//   BROWSER_BACKENDS  worker backend ('chromium-webgl', 'chromium-litert-wasm') ->
//             {browser, tfjs_backend, engine: tfjs | litert | ort}
//   XVFB      the X server that gives a display-needing backend its display
//   TFLITE_BUILTIN_OPS  TFLite's builtin op names by code (schema.fbs's BuiltinOperator)
const fs = require('fs');
const path = require('path');

const VOCABULARY_PATH = path.join(__dirname, '..', '..', 'vocabulary.json');
const vocabulary = JSON.parse(fs.readFileSync(VOCABULARY_PATH, 'utf8'));

const FORMATS = vocabulary.formats;
const BACKENDS = vocabulary.backends;
const ENGINE_BACKENDS = vocabulary.engine_backends;
const ENGINE_RUNTIMES = vocabulary.engine_runtimes;
const RUNTIMES = vocabulary.runtimes;
const BROWSER_RUNTIMES = vocabulary.browser_runtimes;
const PARITY = vocabulary.parity;
const BROWSERS = vocabulary.browsers;
const BROWSER_BACKENDS = vocabulary.browser_backends;
const XVFB = vocabulary.xvfb;
const TFLITE_BUILTIN_OPS = vocabulary.tflite_builtin_ops;

/** The path Node loads for a format inside a model folder: its entry file, or the folder itself. */
function formatPath(modelDir, format) {
  const { folder, entry } = FORMATS[format];
  return path.resolve(modelDir, folder, entry || '');
}

/** The runtime name for a backend and a format ('tfjs-node/layers'), or null. */
function runtimeName(backend, format) {
  const found = Object.entries(RUNTIMES).find(
    ([, rt]) => rt.backend === backend && rt.format === format,
  );
  return found ? found[0] : null;
}

module.exports = {
  FORMATS,
  BACKENDS,
  ENGINE_BACKENDS,
  ENGINE_RUNTIMES,
  RUNTIMES,
  BROWSER_RUNTIMES,
  PARITY,
  BROWSERS,
  BROWSER_BACKENDS,
  XVFB,
  TFLITE_BUILTIN_OPS,
  formatPath,
  runtimeName,
};
