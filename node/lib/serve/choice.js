'use strict';
// Which verified path a service runs a model on, weighing how each batches.
// A path whose rows come out with the same bits at every batch size runs each
// batch at its own size; any other pads every batch (catalog.js checks which
// at load), so a request alone costs a padded batch there. From the figures
// parity.json records for each path (samples/s at B=1 and B=32, written by
// `tfjs-bridge convert` and `bench`), the service's capacity is estimated at
// both ends of the load:
//   light  requests/s, one request of one sample at a time: 1 / time of a
//          batch of the height one row runs at (1 unpadded, else the smallest
//          padded height)
//   full   samples/s in full batches: the most rows a batch holds (maxBatch,
//          or a padded path's largest height) / time of such a batch
// and the path with the highest geometric mean of the two serves: a path
// twice as fast at one end must not be more than twice as slow at the other.
// Each batch also costs the service a fixed time outside the model (the hop
// to the worker and back: message, copies, tensors; `overheadMs`), which the
// recorded figures leave out. It weighs most on a path that runs one row a
// batch: rnn_stack's XLA path, 0.43 ms a row by its figures, served 865-878
// requests/s at c=64 (1.15 ms a batch), so about 0.7 ms a batch is the hop.
// How a path batches is known only once it is loaded and checked, so paths
// are scored optimistically (unpadded) until checked, and only the best one
// so far is loaded, until the best is a checked one.
const { batchMs } = require('../runtime/choose');

/** The rows a batch of `rows` runs as: its own size unpadded (heights null), else the smallest height that holds it. */
function heightFor(heights, rows) {
  return heights ? heights.find((h) => h >= rows) : rows;
}

/**
 * The service's own time per batch, outside the model (measured as above).
 * A constant, not a recorded figure: the worker hop alone measured 0.2-0.3
 * ms a batch; the rest is the HTTP process's work per request, per batch
 * when batches hold one row, on the same cores. Convert's check times each
 * path inside one worker, with no HTTP service, so it cannot record it.
 */
const BATCH_OVERHEAD_MS = 0.7;

/** {light, full, score} for a path's recorded figures batched at `heights`, each batch `overheadMs` more; null without figures. */
function capacity(speed, heights, maxBatch, overheadMs = 0) {
  const most = heights ? Math.min(heights[heights.length - 1], maxBatch) : maxBatch;
  const oneMs = batchMs(speed, heightFor(heights, 1));
  const fullMs = batchMs(speed, most);
  if (oneMs === null || fullMs === null) return null;
  const light = 1000 / (oneMs + overheadMs);
  const full = (1000 * most) / (fullMs + overheadMs);
  return { light, full, score: Math.sqrt(light * full) };
}

/**
 * Picks among `paths` ([{runtime, format, speed}], each with figures), each
 * batch costing `overheadMs` beyond its recorded time.
 * known(path) -> {heights} when how it batches is known without a load (or
 * null); check(path) -> Promise<{heights, ...}> loads and checks it. Returns
 * {path, state, scored}: the winner, what check() (or known()) said of it,
 * and every path's [{path, heights, checked, light, full, score}].
 */
async function choosePath(paths, maxBatch, known, check, overheadMs = 0) {
  const states = new Map(paths.map((p) => [p, { fixed: known(p), checked: null }]));
  const heightsOf = (p) => {
    const { fixed, checked } = states.get(p);
    const state = checked || fixed;
    return state ? state.heights : null; // unknown: optimistic, unpadded
  };
  for (;;) {
    const scored = paths.map((p) => ({
      path: p,
      heights: heightsOf(p),
      checked: Boolean(states.get(p).checked),
      known: Boolean(states.get(p).checked || states.get(p).fixed),
      ...capacity(p.speed, heightsOf(p), maxBatch, overheadMs),
    }));
    const best = scored.reduce((a, b) => (b.score > a.score ? b : a));
    const state = states.get(best.path);
    if (state.checked) return { path: best.path, state: state.checked, scored };
    state.checked = await check(best.path);
  }
}

const round = (n) => Math.round(n).toLocaleString('en-US');

function batchingName(heights) {
  if (!heights) return 'unpadded';
  if (heights.length === 1 && heights[0] === 1) return 'one row a batch';
  return `padded to ${heights.join('/')}`;
}

/** The figures behind a choice, for the start-up line. */
function describeChoice({ path, scored }, maxBatch, overheadMs = 0) {
  const parts = scored
    .slice()
    .sort((a, b) => b.score - a.score)
    .map((s) => {
      const how = s.known ? batchingName(s.heights) : 'at best';
      const mark = s.path === path ? ' (chosen)' : '';
      return `${s.path.runtime} ${how} ${round(s.light)} | ${round(s.full)}${mark}`;
    });
  return (
    `best verified path for serving by the recorded figures (requests/s one at a time | ` +
    `samples/s in full batches of up to ${maxBatch}` +
    (overheadMs ? `, each batch ${overheadMs} ms more for the worker hop` : '') +
    `; weighed alike): ${parts.join('; ')}`
  );
}

module.exports = { BATCH_OVERHEAD_MS, capacity, choosePath, describeChoice, heightFor };
