'use strict';
// The chunk sizes a stream runner feeds (lib/runtime/streaming.js): verify
// sends a stateful model's sizes (py/tfjs_bridge/parity/stateful.py) so that
// Node's streams and Keras's stateful model are fed the same chunks.
const test = require('node:test');
const assert = require('node:assert/strict');
const { chunkSizes, seeded } = require('../lib/runtime/streaming');

test('given sizes are fed as given', () => {
  assert.deepEqual(chunkSizes(10, [2, 2, 1, 1, 2, 2], seeded(0)), [2, 2, 1, 1, 2, 2]);
});

test('given sizes must be positive integers adding up to the steps', () => {
  for (const bad of [
    [2, 2],
    [5, 6],
    [0, 10],
    [2.5, 7.5],
    ['5', 5],
  ]) {
    assert.throws(() => chunkSizes(10, bad, seeded(0)), /positive integers adding up to 10 steps/);
  }
});

test('steps and random sizes still add up', () => {
  assert.deepEqual(chunkSizes(3, 'steps', seeded(0)), [1, 1, 1]);
  const sizes = chunkSizes(40, 'random', seeded(1));
  assert.equal(
    sizes.reduce((a, b) => a + b, 0),
    40,
  );
  assert.ok(sizes.every((n) => n >= 1 && n <= 10));
});
