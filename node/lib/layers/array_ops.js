'use strict';
// The step ops (ops.js's interface: matMul, add, sub, mul, select, tanh,
// sigmoid, clip01, split) on plain Float32Arrays, for streams of a few rows.
// On tfjs-node every op of a step is a call through N-API into TensorFlow's
// eager runtime with a fixed cost (~20-30 µs), whatever its size; a batch-1
// step of GRU(64) on 28 features is ~18k multiply-adds, a few µs of
// arithmetic in JavaScript. cells.js's equations run on these unchanged.
//
// A value is a matrix {rows, cols, data: Float32Array (row-major)}. Products
// sum in doubles and round once to float32 (TensorFlow rounds each partial
// sum): within float32's rounding of what Keras computes, not bit-equal.
//
// TFJS_BRIDGE_ARRAY_OPS=off-by-one (switches.js) drops the last term of
// every product's sum: the negative control of the checks that claim the
// array ops are run and compared (node/test/stream.test.js, tests/test_streaming.py).

/** A rows x cols matrix, zeros or on `data`. */
function matrix(rows, cols, data = new Float32Array(rows * cols)) {
  if (data.length !== rows * cols) {
    throw new Error(`array ops: ${data.length} values for a ${rows}x${cols} matrix`);
  }
  return { rows, cols, data };
}

/** A 1- or 2-D tensor's values as a matrix (a vector is one row); copied once. */
function fromTensor(t) {
  const [rows, cols] = t.rank === 1 ? [1, t.shape[0]] : t.shape;
  return matrix(rows, cols, Float32Array.from(t.dataSync()));
}

/** a [B, K] · b [K, N] -> [B, N]; each sum in a double, rounded once. */
function matMulWith(short) {
  return (a, b) => {
    if (a.cols !== b.rows)
      throw new Error(`array ops: matMul of ${a.rows}x${a.cols} and ${b.rows}x${b.cols}`);
    const [n, k] = [b.cols, short ? a.cols - 1 : a.cols];
    const out = matrix(a.rows, n);
    const sums = new Float64Array(n);
    const [ad, bd] = [a.data, b.data];
    for (let i = 0; i < a.rows; i++) {
      sums.fill(0);
      for (let p = 0; p < k; p++) {
        const v = ad[i * a.cols + p];
        if (v === 0) continue;
        const row = p * n;
        for (let j = 0; j < n; j++) sums[j] += v * bd[row + j];
      }
      out.data.set(sums, i * n);
    }
    return out;
  };
}

/** An elementwise binary op; b may be one row (a bias), broadcast over a's rows. */
function binary(f) {
  return (a, b) => {
    const out = matrix(a.rows, a.cols);
    const [ad, bd, od] = [a.data, b.data, out.data];
    if (b.rows === a.rows && b.cols === a.cols) {
      for (let i = 0; i < od.length; i++) od[i] = f(ad[i], bd[i]);
    } else if (b.rows === 1 && b.cols === a.cols) {
      for (let i = 0; i < od.length; i++) od[i] = f(ad[i], bd[i % a.cols]);
    } else {
      throw new Error(`array ops: ${a.rows}x${a.cols} with ${b.rows}x${b.cols}`);
    }
    return out;
  };
}

function unary(f) {
  return (v) => {
    const out = matrix(v.rows, v.cols);
    for (let i = 0; i < out.data.length; i++) out.data[i] = f(v.data[i]);
    return out;
  };
}

const sigmoid = (x) => 1 / (1 + Math.exp(-x));

/** Row-wise softmax (along the features), as Keras's: exp(x - max) / sum. */
function softmax(v) {
  const out = matrix(v.rows, v.cols);
  for (let i = 0; i < v.rows; i++) {
    const row = v.data.subarray(i * v.cols, (i + 1) * v.cols);
    let top = -Infinity;
    for (const x of row) top = Math.max(top, x);
    let sum = 0;
    const e = row.map((x) => Math.exp(x - top));
    for (const x of e) sum += x;
    for (let j = 0; j < v.cols; j++) out.data[i * v.cols + j] = e[j] / sum;
  }
  return out;
}

// Activations the array path computes itself, by tfjs's class name; any
// other keeps a stream on TensorFlow's ops (stream.js's choice says which).
const ACTIVATIONS = {
  linear: (v) => v,
  tanh: unary(Math.tanh),
  sigmoid: unary(sigmoid),
  relu: unary((x) => (x > 0 ? x : 0)),
  hardSigmoid: unary((x) => Math.min(1, Math.max(0, 0.2 * x + 0.5))), // tf-keras 2.x's, tfjs's
  softmax,
};

/** The ops on matrices (the switch read when the ops are made: a test sets it per process). */
function arrayOps() {
  const short = process.env.TFJS_BRIDGE_ARRAY_OPS === 'off-by-one';
  return {
    matMul: matMulWith(short),
    add: binary((x, y) => x + y),
    sub: binary((x, y) => x - y),
    mul: binary((x, y) => x * y),
    /** where(condition, a, b) row by row: condition a Uint8Array, one flag per row. */
    select: (condition, a, b) => {
      const out = matrix(a.rows, a.cols);
      for (let i = 0; i < a.rows; i++) {
        const from = condition[i] ? a : b;
        out.data.set(from.data.subarray(i * a.cols, (i + 1) * a.cols), i * a.cols);
      }
      return out;
    },
    tanh: ACTIVATIONS.tanh,
    sigmoid: ACTIVATIONS.sigmoid,
    clip01: unary((x) => Math.min(1, Math.max(0, x))),
    /** [B, N] cut along its columns into parts of `sizes` columns (copies). */
    split: (v, sizes) => {
      let start = 0;
      return sizes.map((size) => {
        const out = matrix(v.rows, size);
        for (let i = 0; i < v.rows; i++) {
          const from = i * v.cols + start;
          out.data.set(v.data.subarray(from, from + size), i * size);
        }
        start += size;
        return out;
      });
    },
  };
}

module.exports = { arrayOps, matrix, fromTensor, ACTIVATIONS };
