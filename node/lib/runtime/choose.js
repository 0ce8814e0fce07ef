'use strict';
// Which format to run a model folder in when none is asked for: the fastest
// Node path (a runtime with a default_rank in vocabulary.json: tfjs-node, or
// onnxruntime-node when installed) that the parity check passed for this
// very folder. parity.json (its schema is Python's: parity_record.py):
//   results  written by `tfjs-bridge verify`: status per runtime
//   speed    written by `tfjs-bridge bench`: samples/s per batch size, and
//            the cold start (process start to first prediction)
// "Fastest" depends on the caller: a long-lived process (the worker, a
// service) wants the highest throughput at its batch size; a one-shot run
// (predict.js) also pays the load, so it wants the least total time.
// Without figures, runtimes go by default_rank (what bench measured on this
// machine kind). Never an unverified path, unless nothing was verified: then
// layers, and the reason says so.
const fs = require('fs');
const path = require('path');
const { BACKENDS, RUNTIMES, PARITY } = require('./vocabulary');

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

/** samples/s measured at the batch size nearest to `batch` (log scale). */
function throughput(figures, batch) {
  const sizes = Object.keys(figures)
    .filter((k) => /^\d+$/.test(k))
    .map(Number);
  if (!sizes.length) return null;
  const nearest = sizes.reduce((a, b) =>
    Math.abs(Math.log(b / batch)) < Math.abs(Math.log(a / batch)) ? b : a,
  );
  return figures[String(nearest)];
}

const UNVERIFIED = 'unverified: run `tfjs-bridge verify` to pick the fastest verified path';

/**
 * {format, runtime, why} for a model folder. `backends` limits the choice to
 * runtimes of those backends (a worker has one); `oneShot` counts the load.
 */
function chooseFormat(modelDir, { batch = 32, oneShot = false, backends = null } = {}) {
  const parity = readParity(modelDir);
  const fallback = (why) => ({ format: 'layers', runtime: null, why });
  if (parity && parity.version !== PARITY.version) {
    return fallback(
      `${PARITY.file} is from another tfjs-bridge version: run \`tfjs-bridge verify\` again`,
    );
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
    ? candidates.filter((name) => (parity.results[name] || {}).status === 'pass')
    : [];
  if (!passed.length) return fallback(UNVERIFIED);
  const chosen = (name, why) => ({ format: RUNTIMES[name].format, runtime: name, why });
  const figures = (name) => (parity.speed && parity.speed[name]) || null;
  if (oneShot) {
    const cost = (name) => {
      const s = figures(name);
      const rate = s && throughput(s, batch);
      const coldStart = s && s[PARITY.cold_start_key];
      return coldStart && rate ? coldStart + batch / rate : null;
    };
    const timed = passed.filter((name) => cost(name) !== null).sort((a, b) => cost(a) - cost(b));
    if (timed.length) {
      const seconds = cost(timed[0]).toFixed(2);
      return chosen(
        timed[0],
        `fastest verified path from a cold start for ${batch} sample(s) (${seconds} s measured)`,
      );
    }
  } else {
    const rate = (name) => (figures(name) ? throughput(figures(name), batch) : null);
    const timed = passed.filter((name) => rate(name) !== null).sort((a, b) => rate(b) - rate(a));
    if (timed.length) {
      const measured = Math.round(rate(timed[0]));
      return chosen(
        timed[0],
        `fastest verified path at batch ${batch} (${measured} samples/s measured)`,
      );
    }
  }
  return chosen(
    passed[0],
    'fastest verified path (ranked by format; run `tfjs-bridge bench` for figures)',
  );
}

module.exports = { chooseFormat, readParity };
