'use strict';
// How the service picks a model's path (lib/serve/choice.js) from the figures
// parity.json records, weighing how each path batches, and how batches are
// padded to the smallest of a few heights (lib/serve/batcher.js). No
// TensorFlow: the figures and the runs are made up.
const test = require('node:test');
const assert = require('node:assert/strict');
const { batchMs } = require('../lib/runtime/choose');
const { capacity, choosePath, describeChoice } = require('../lib/serve/choice');
const { Batcher } = require('../lib/serve/batcher');

test('batchMs interpolates the batch time between measured sizes', () => {
  const figures = { 1: 1000, 32: 16000, cold_start_s: 0.5 }; // 1 ms at B=1, 2 ms at B=32
  assert.equal(batchMs(figures, 1), 1);
  assert.equal(batchMs(figures, 32), 2);
  assert.ok(Math.abs(batchMs(figures, 8) - (1 + 7 / 31)) < 1e-12);
  assert.equal(batchMs(figures, 64), 4); // beyond: the largest size's samples/s
  assert.equal(batchMs({ cold_start_s: 1 }, 8), null);
});

// gru-like: the SavedModel runs every batch size bit-identically; XLA is 25 %
// faster per full batch but pads every request to 32.
const savedModel = {
  runtime: 'tfjs-node/saved_model',
  format: 'saved_model',
  speed: { 1: 1500, 32: 24000 },
};
const xla = {
  runtime: 'tfjs-node/saved_model_xla',
  format: 'saved_model_xla',
  speed: { 1: 2000, 32: 30000 },
};
const layers = { runtime: 'tfjs-node/layers', format: 'layers', speed: { 1: 450, 32: 11000 } };

test('an unpadded path beats a faster-per-batch path that pads every request', async () => {
  const checked = [];
  const known = (p) => (p.format === 'saved_model_xla' ? { heights: [32] } : null);
  const check = async (p) => {
    checked.push(p.runtime);
    return { heights: null, batching: 'unpadded' };
  };
  const choice = await choosePath([layers, savedModel, xla], 32, known, check);
  assert.equal(choice.path, savedModel);
  // XLA padded: 30,000 / 32 = 938 requests/s one at a time, against 1,500
  const score = (p) => choice.scored.find((s) => s.path === p);
  assert.equal(Math.round(score(xla).light), 938);
  assert.equal(Math.round(score(savedModel).light), 1500);
  // only the path that could win was loaded and checked
  assert.deepEqual(checked, ['tfjs-node/saved_model']);
  const line = describeChoice(choice, 32);
  assert.match(line, /tfjs-node\/saved_model unpadded 1,500 \| 24,000 \(chosen\)/);
  assert.match(line, /tfjs-node\/saved_model_xla padded to 32 938 \| 30,000/);
  assert.match(line, /tfjs-node\/layers at best 450 \| 11,000/);
});

test('a padded path wins when the figures say it serves more at both ends', async () => {
  const fast = { ...xla, speed: { 1: 5000, 32: 120000 } }; // 3,750 requests/s even padded
  const choice = await choosePath(
    [savedModel, fast],
    32,
    (p) => (p.format === 'saved_model_xla' ? { heights: [32] } : null),
    async (p) => ({ heights: p.format === 'saved_model_xla' ? [32] : null }),
  );
  assert.equal(choice.path, fast);
});

test('a path found padded after its check loses to the next best', async () => {
  const checked = [];
  const quick = { ...layers, speed: { 1: 1200, 32: 20000 } };
  const choice = await choosePath(
    [quick, savedModel],
    32,
    () => null,
    async (p) => {
      checked.push(p.runtime);
      return { heights: p.format === 'saved_model' ? [32] : null };
    },
  );
  // saved_model looked best unpadded (1,500 | 24,000); checked, it pads to 32
  // (750 | 24,000, 4,243), below layers unpadded (1,200 | 20,000, 4,899)
  assert.deepEqual(checked, ['tfjs-node/saved_model', 'tfjs-node/layers']);
  assert.equal(choice.path, quick);
  assert.equal(Math.round(capacity(savedModel.speed, [32], 32).light), 750);
  // padded to the smallest of a few heights: a request alone runs as a batch of one
  assert.equal(Math.round(capacity(savedModel.speed, [1, 8, 32], 32).light), 1500);
});

test('padded batches take the smallest height that holds them', async () => {
  const heights = [];
  const batcher = new Batcher({
    run: async (arrays, rows) => {
      heights.push(rows);
      return [arrays[0]];
    },
    idle: () => true,
    maxBatch: 32,
    queueLimit: 1024,
    pad: () => [1, 8, 32],
  });
  const request = (n) =>
    batcher.submit([{ data: new Float32Array(n * 2).fill(n), shape: [n, 2], dtype: 'float32' }]);
  const answers = await Promise.all([request(1), request(5), request(9), request(40)]);
  assert.deepEqual(heights, [1, 8, 32, 32, 8]);
  assert.deepEqual(
    answers.map((a) => a[0].shape),
    [
      [1, 2],
      [5, 2],
      [9, 2],
      [40, 2],
    ],
  );
  assert.ok(answers[2][0].data.every((v) => v === 9));
});

test('a batch holds at most the largest padded height', async () => {
  const heights = [];
  const batcher = new Batcher({
    run: async (arrays, rows) => {
      heights.push(rows);
      return [arrays[0]];
    },
    idle: () => true,
    maxBatch: 32,
    queueLimit: 1024,
    pad: () => [1, 8],
  });
  const x = new Float32Array(20).map((_, i) => i);
  const [y] = await batcher.submit([{ data: x, shape: [20, 1], dtype: 'float32' }]);
  assert.deepEqual(heights, [8, 8, 8]); // 8 + 8 + 4 rows, the last padded to 8
  assert.deepEqual(Array.from(y.data), Array.from(x));
  // and the service's figures count batches of 8 at full load
  const capped = capacity({ 1: 1000, 32: 16000 }, [1, 8], 32);
  assert.equal(
    Math.round(capped.full),
    Math.round((1000 * 8) / batchMs({ 1: 1000, 32: 16000 }, 8)),
  );
});

test("the worker hop's time per batch turns a one-row-a-batch path's lead around", async () => {
  // rnn_stack as recorded: XLA 0.43 ms a row but its rows keep their bits
  // only one row a batch; the SavedModel padded to 16/24 (2.3 ms at 16).
  const oneRow = { runtime: 'tfjs-node/saved_model_xla', format: 'saved_model_xla',
    speed: { 1: 2320, 32: 20000 } }; // prettier-ignore
  const padded = { runtime: 'tfjs-node/saved_model', format: 'saved_model',
    speed: { 1: 439, 32: 8588 } }; // prettier-ignore
  const heights = (p) => ({ heights: p === oneRow ? [1] : [16, 24] });
  const bare = await choosePath([oneRow, padded], 32, heights, async (p) => heights(p));
  assert.equal(bare.path, oneRow); // 2,320 | 2,320 against 1,942
  const hop = await choosePath([oneRow, padded], 32, heights, async (p) => heights(p), 0.7);
  assert.equal(hop.path, padded); // 884 | 884 against the SavedModel's full batches
  const score = (choice, p) => choice.scored.find((s) => s.path === p);
  assert.equal(Math.round(score(hop, oneRow).full), 884); // 1000 / (0.431 + 0.7)
  assert.ok(score(hop, padded).full > 5 * score(hop, oneRow).full);
  assert.match(describeChoice(hop, 32, 0.7), /each batch 0.7 ms more for the worker hop/);
});
