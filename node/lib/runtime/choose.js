'use strict';
// Which format to run a model folder in when none is asked for: the fastest
// Node path (a runtime with a default_rank in vocabulary.json: tfjs-node, or
// onnxruntime-node when installed) that the parity check passed for this
// very folder. parity.json (its schema is Python's: folder/parity_record.py):
//   results  written by `tfjs-bridge verify`: status per runtime
//   speed    written by `tfjs-bridge bench`: samples/s per batch size, and
//            the cold start (process start to first prediction)
// `tfjs-bridge convert` writes both for the paths below (a quick verify, B=1
// and B=32 timed briefly: bench/first_figures.py), so they exist from the start.
// "Fastest" depends on the caller: a long-lived process (the worker) wants
// the highest throughput at its batch size; a one-shot run (predict.js) also
// pays the load, so it wants the least total time. The service also weighs
// how each path batches (lib/serve/choice.js, from verifiedPaths and batchMs).
// Without figures, runtimes go by default_rank (what bench measured on this
// machine kind). Never an unverified path, unless nothing was verified: then
// layers, and the reason says so.
const fs = require('fs');
const path = require('path');
const { BACKENDS, RUNTIMES, BROWSER_RUNTIMES, PARITY } = require('./vocabulary');

function installed(backend) {
  const { package: name, optional } = BACKENDS[backend];
  if (!optional) return true;
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** The folder's parity.json, or null when there is none. */
function readParity(modelDir) {
  const file = path.join(modelDir, PARITY.file);
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${err.message})`, { cause: err });
  }
}

/** The measured batch size nearest to `batch` (log scale), or null. */
function nearestSize(figures, batch) {
  const sizes = Object.keys(figures)
    .filter((k) => /^\d+$/.test(k))
    .map(Number);
  if (!sizes.length) return null;
  return sizes.reduce((a, b) =>
    Math.abs(Math.log(b / batch)) < Math.abs(Math.log(a / batch)) ? b : a,
  );
}

/** samples/s measured at the batch size nearest to `batch` (log scale). */
function throughput(figures, batch) {
  const nearest = nearestSize(figures, batch);
  return nearest === null ? null : figures[String(nearest)];
}

/**
 * ms for one batch of `batch` samples, from recorded figures (samples/s per
 * batch size): between two measured sizes, the batch time is interpolated
 * linearly (a batch costs a fixed part and a part per sample); below the
 * smallest, that size's time; above the largest, its samples/s. null without figures.
 */
function batchMs(figures, batch) {
  const points = Object.keys(figures || {})
    .filter((k) => /^\d+$/.test(k) && figures[k] > 0)
    .map((k) => ({ size: Number(k), ms: (1000 * Number(k)) / figures[k] }))
    .sort((a, b) => a.size - b.size);
  if (!points.length) return null;
  const [first, last] = [points[0], points[points.length - 1]];
  if (batch <= first.size) return first.ms;
  if (batch >= last.size) return (batch * last.ms) / last.size;
  const upper = points.findIndex((p) => p.size >= batch);
  const [a, b] = [points[upper - 1], points[upper]];
  return a.ms + ((b.ms - a.ms) * (batch - a.size)) / (b.size - a.size);
}

const UNVERIFIED = 'unverified: run `tfjs-bridge verify` to pick the fastest verified path';

/**
 * The paths this folder may run on by default, in default_rank order: the
 * runtimes with a default_rank, installed, of `backends` if given, that
 * parity.json records as passed. [{runtime, format, speed}] (speed: the
 * recorded figures, or null). {paths: [], why} when there are none.
 */
function verifiedPaths(modelDir, { backends = null } = {}) {
  const parity = readParity(modelDir);
  if (parity && parity.version !== PARITY.version) {
    const why = `${PARITY.file} is from another tfjs-bridge version: run \`tfjs-bridge verify\` again`;
    return { paths: [], why };
  }
  const candidates = Object.entries(RUNTIMES)
    .filter(
      ([, rt]) =>
        rt.default_rank !== null &&
        (!backends || backends.includes(rt.backend)) &&
        installed(rt.backend),
    )
    .sort(([, a], [, b]) => a.default_rank - b.default_rank)
    .map(([name]) => name);
  const passed = parity
    ? candidates.filter((name) => ((parity.results || {})[name] || {}).status === 'pass')
    : [];
  const paths = passed.map((name) => ({
    runtime: name,
    format: RUNTIMES[name].format,
    speed: (parity.speed && parity.speed[name]) || null,
  }));
  return { paths, why: paths.length ? '' : UNVERIFIED };
}

/**
 * {format, runtime, why} for a model folder. `backends` limits the choice to
 * runtimes of those backends (a worker has one); `oneShot` counts the load.
 */
function chooseFormat(modelDir, { batch = 32, oneShot = false, backends = null } = {}) {
  const { paths, why } = verifiedPaths(modelDir, { backends });
  if (!paths.length) return { format: 'layers', runtime: null, why };
  const chosen = ({ runtime, format }, reason) => ({ format, runtime, why: reason });
  if (oneShot) {
    const cost = ({ speed }) => {
      const rate = speed && throughput(speed, batch);
      const coldStart = speed && speed[PARITY.cold_start_key];
      return coldStart && rate ? coldStart + batch / rate : null;
    };
    const timed = paths.filter((p) => cost(p) !== null).sort((a, b) => cost(a) - cost(b));
    if (timed.length) {
      const seconds = cost(timed[0]).toFixed(2);
      return chosen(
        timed[0],
        `fastest verified path from a cold start for ${batch} sample(s) (${seconds} s measured)`,
      );
    }
  } else {
    const rate = ({ speed }) => (speed ? throughput(speed, batch) : null);
    const timed = paths.filter((p) => rate(p) !== null).sort((a, b) => rate(b) - rate(a));
    if (timed.length) {
      const measured = Math.round(rate(timed[0]));
      return chosen(
        timed[0],
        `fastest verified path at batch ${batch} (${measured} samples/s measured)`,
      );
    }
  }
  return chosen(
    paths[0],
    'fastest verified path (ranked by format; run `tfjs-bridge bench` for figures)',
  );
}

// The other deployment target: a browser page. Its paths (vocabulary.json's
// browser_runtimes: tfjs's backends in Chromium and Firefox, LiteRT.js and
// ONNX Runtime Web in Chromium) are verified and timed in a real browser by
// `verify`/`bench --runtime ...`, into the same parity.json. A page predicts
// one input at a time, so batch 1 by default. No ranking by format here:
// what a page runs fastest depends on the browser and the GPU, so only
// figures choose.
const BROWSER_VERIFY =
  '--runtime chromium-wasm --runtime chromium-webgl --runtime chromium-litert-wasm';

/**
 * The fastest verified browser-page path in a parity.json record (pure: the
 * record in, the choice out): {runtime, format, backend, samples_per_s, batch,
 * why}; runtime null when none is verified. `formats`/`backends` limit the
 * choice (the demo runs only some); `model` names the folder in the reasons.
 */
function fastestBrowserPath(
  parity,
  { batch = 1, formats = null, backends = null, model = 'MODEL' } = {},
) {
  const none = (why) => ({ runtime: null, format: null, backend: null, why });
  if (parity && parity.version !== PARITY.version) {
    return none(
      `${PARITY.file} is from another tfjs-bridge version: run \`tfjs-bridge verify\` again`,
    );
  }
  const passed = Object.entries(BROWSER_RUNTIMES).filter(
    ([name, rt]) =>
      (!formats || formats.includes(rt.format)) &&
      (!backends || backends.includes(rt.backend)) &&
      (((parity || {}).results || {})[name] || {}).status === 'pass',
  );
  if (!passed.length) {
    return none(`unverified: run \`tfjs-bridge verify ${model} ${BROWSER_VERIFY}\``);
  }
  const at = ([name]) => {
    const figures = (parity.speed || {})[name] || {};
    const size = nearestSize(figures, batch);
    return size === null ? null : { size, rate: figures[String(size)] };
  };
  const timed = passed.filter((p) => at(p)).sort((a, b) => at(b).rate - at(a).rate);
  const pick = ([name, rt], rest) => ({
    runtime: name,
    format: rt.format,
    backend: rt.backend,
    ...rest,
  });
  if (!timed.length) {
    return pick(passed[0], {
      samples_per_s: null,
      batch: null,
      why: `verified, not timed: run \`tfjs-bridge bench ${model} ${BROWSER_VERIFY}\``,
    });
  }
  const { size, rate } = at(timed[0]);
  return pick(timed[0], {
    samples_per_s: rate,
    batch: size,
    why: `fastest verified path (${Math.round(rate)} samples/s at B=${size})`,
  });
}

/** fastestBrowserPath for a model folder's parity.json. */
function chooseBrowserPath(modelDir, options = {}) {
  return fastestBrowserPath(readParity(modelDir), {
    model: path.basename(path.resolve(modelDir)),
    ...options,
  });
}

module.exports = {
  chooseFormat,
  verifiedPaths,
  batchMs,
  readParity,
  fastestBrowserPath,
  chooseBrowserPath,
};
