'use strict';
// Which format to run a model folder in when none is asked for: the fastest
// Node path (tfjs-node, or onnxruntime-node when installed) that the parity
// check passed for this very folder.
//   parity.json  written by `tfjs-bridge verify` (status per runtime)
//   speed        written into it by `tfjs-bridge bench`: samples/s per batch
//                size, and cold_start_s (process start to first prediction)
// "Fastest" depends on the caller: a long-lived process (the worker, a
// service) wants the highest throughput at its batch size; a one-shot run
// (predict.js) also pays the load, so it wants the least total time.
// Without figures, formats are ranked by what bench measured on this machine
// kind. Never an unverified path, unless nothing was verified: then layers,
// and the reason says so.
const fs = require('fs');
const path = require('path');

const RANKED = ['saved_model', 'saved_model_xla', 'onnx', 'graph', 'layers'];
const RUNTIME = (format) => (format === 'onnx' ? 'onnxruntime-node/onnx' : `tfjs-node/${format}`);

function onnxRuntimeInstalled() {
  try {
    require.resolve('onnxruntime-node');
    return true;
  } catch {
    return false;
  }
}

function readParity(modelDir) {
  const file = path.join(modelDir, 'parity.json');
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${err.message})`);
  }
}

/** samples/s measured at the batch size nearest to `batch` (log scale). */
function throughput(figures, batch) {
  const sizes = Object.keys(figures).filter((k) => /^\d+$/.test(k)).map(Number);
  if (!sizes.length) return null;
  const nearest = sizes.reduce((a, b) => (Math.abs(Math.log(b / batch)) < Math.abs(Math.log(a / batch)) ? b : a));
  return figures[String(nearest)];
}

function chooseFormat(modelDir, { batch = 32, oneShot = false } = {}) {
  const parity = readParity(modelDir);
  const usable = RANKED.filter((f) => f !== 'onnx' || onnxRuntimeInstalled());
  const passed = parity ? usable.filter((f) => (parity.results[RUNTIME(f)] || {}).status === 'pass') : [];
  if (!passed.length) {
    return { format: 'layers', why: 'unverified: run `tfjs-bridge verify` to pick the fastest verified path' };
  }
  const figures = (f) => (parity.speed && parity.speed[RUNTIME(f)]) || null;
  if (oneShot) {
    const cost = (f) => {
      const s = figures(f);
      const rate = s && throughput(s, batch);
      return s && s.cold_start_s && rate ? s.cold_start_s + batch / rate : null;
    };
    const timed = passed.filter((f) => cost(f) !== null).sort((a, b) => cost(a) - cost(b));
    if (timed.length) {
      return { format: timed[0], why: `fastest verified path from a cold start for ${batch} sample(s) (${cost(timed[0]).toFixed(2)} s measured)` };
    }
  } else {
    const rate = (f) => (figures(f) ? throughput(figures(f), batch) : null);
    const timed = passed.filter((f) => rate(f) !== null).sort((a, b) => rate(b) - rate(a));
    if (timed.length) {
      return { format: timed[0], why: `fastest verified path at batch ${batch} (${Math.round(rate(timed[0]))} samples/s measured)` };
    }
  }
  return { format: passed[0], why: 'fastest verified path (ranked by format; run `tfjs-bridge bench` for figures)' };
}

module.exports = { chooseFormat, readParity };
