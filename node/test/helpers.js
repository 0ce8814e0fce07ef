'use strict';
// Plain-JavaScript references for the recurrent-layer tests: seeded weights,
// and the textbook equations computed without tfjs.
const assert = require('node:assert/strict');

const { seeded } = require('../lib/runtime/streaming');

/** Seeded weights in [-1, 1): the stream runner's mulberry32, rescaled. */
function seededRandom(seed) {
  const uniform = seeded(seed);
  return () => uniform() * 2 - 1;
}

const randomMatrix = (rand, rows, cols) =>
  Array.from({ length: rows }, () => Array.from({ length: cols }, () => rand()));
const hardSigmoid = (x) => Math.min(1, Math.max(0, 0.2 * x + 0.5));
const sigmoid = (x) => 1 / (1 + Math.exp(-x));
// out[j] = sum_i v[i] * m[i][j + offset], for j < units
const dot = (v, m, offset, units) =>
  Array.from({ length: units }, (_, j) => v.reduce((s, vi, i) => s + vi * m[i][j + offset], 0));

function assertClose(got, expected, atol) {
  assert.equal(got.length, expected.length);
  got.forEach((row, b) =>
    row.forEach((v, j) => {
      assert.ok(
        Math.abs(v - expected[b][j]) <= atol,
        `[${b}][${j}]: tfjs ${v} vs reference ${expected[b][j]}`,
      );
    }),
  );
}

module.exports = { seededRandom, randomMatrix, hardSigmoid, sigmoid, dot, assertClose };
