'use strict';
// A .tflite in LiteRT.js (@litertjs/core) behind runners.js's interface
// (run(arrays, names) -> plain outputs), for a page and a Node process alike
// (browser/litert_page.js, runtime/litert_node.js); it takes the litert module
// it is given, so it bundles into a page without one. LiteRT.js takes static
// shapes only, so each batch size gets its own compiled model, from a copy of
// the file with the batch fixed (io/tflite_batch.js), a few kept; each is
// checked to be compiled for the accelerator asked for, and fully (LiteRT.js
// otherwise falls back to WASM quietly).
//
// On WebGPU the files are those converted at fixed batches (`convert
// --static-batch`: rewriting a dynamic file's batch leaves run-time shape
// arithmetic the delegate refuses). A batch is then run as pieces of the
// largest size, the last one at its own size when there is a file for it,
// else zero-padded to the smallest size that holds it (rows are
// independent; the padding's outputs are dropped). `check` (the page's
// delegate-error guard) is called after every compile and every run: a
// failed invoke can resolve with zeros, which must never become answers.
const { fixTfliteBatch } = require('../io/tflite_batch');
const { byName } = require('./runners');

const COMPILED_KEPT = 4; // compiled batch sizes kept per model (verify uses 2: its chunk and 1)

/** [{start, count, size}]: `n` rows as calls at the sizes there are files for. */
function staticPieces(n, sizes) {
  const largest = Math.max(...sizes);
  const pieces = [];
  for (let start = 0; start < n; start += largest) {
    const count = Math.min(largest, n - start);
    const size = sizes.includes(count) ? count : Math.min(...sizes.filter((s) => s >= count));
    pieces.push({ start, count, size });
  }
  return pieces;
}

/** Rows [start, start + count) of a plain array, zero-padded to `size` rows. */
function rows({ dtype, shape, data }, start, count, size) {
  const per = shape.slice(1).reduce((a, b) => a * b, 1);
  const out = new data.constructor(size * per); // zeros beyond `count`
  out.set(data.subarray(start * per, (start + count) * per));
  return { dtype, shape: [size, ...shape.slice(1)], data: out };
}

/** The pieces' outputs (each [size, ...]) joined along the batch, their padding dropped. */
function joined(parts, pieces) {
  return parts[0].map((first, o) => {
    const per = first.shape.slice(1).reduce((a, b) => a * b, 1);
    const total = pieces.reduce((sum, p) => sum + p.count, 0);
    const data = new first.data.constructor(total * per);
    parts.forEach((outs, i) =>
      data.set(outs[o].data.subarray(0, pieces[i].count * per), pieces[i].start * per),
    );
    return { dtype: first.dtype, shape: [total, ...first.shape.slice(1)], data };
  });
}

/**
 * The model on `accelerator` ('wasm' | 'webgpu'), compiled at a batch of one
 * to read its names: from `bytes` (a dynamic batch, fixed per call), or from
 * `staticFiles` ({batch: bytes}, each fixed at conversion).
 */
async function tfliteRunner(litert, bytes, accelerator, where, { staticFiles, check } = {}) {
  const sizes = staticFiles ? Object.keys(staticFiles).map(Number) : null;
  const guard = check || (() => {});
  const compiled = new Map(); // batch -> CompiledModel
  const compiledAt = async (batch) => {
    if (compiled.has(batch)) return compiled.get(batch);
    if (sizes && !sizes.includes(batch)) {
      throw new Error(`no .tflite at a static batch of ${batch} (there are ${sizes.join(', ')})`);
    }
    const file = sizes ? staticFiles[batch] : fixTfliteBatch(bytes, batch).bytes;
    const model = await litert.loadAndCompile(file, { accelerator });
    try {
      await guard(`compiling the model at a batch of ${batch}`);
    } catch (err) {
      model.delete();
      throw err;
    }
    const used = model.options.accelerator;
    if (used !== accelerator) {
      model.delete();
      throw new Error(`LiteRT.js compiled the model for ${used}, not ${accelerator}`);
    }
    if (accelerator !== 'wasm' && !model.isFullyAccelerated) {
      model.delete();
      throw new Error(
        `tfjs-bridge cannot run this model on LiteRT.js's ${accelerator} delegate: ` +
          `it took only part of the model (LiteRT.js would run the rest on WASM)`,
      );
    }
    if (compiled.size >= COMPILED_KEPT) {
      const [oldest, kept] = compiled.entries().next().value;
      kept.delete();
      compiled.delete(oldest);
    }
    compiled.set(batch, model);
    return model;
  };
  const first = await compiledAt(sizes ? Math.min(...sizes) : 1);
  const inputs = first.getInputDetails().map((d) => d.name);
  // Sorted, as Python sorts a signature's outputs (parity/truth.py).
  const outputs = first.getOutputDetails().map((d) => d.name);
  outputs.sort();

  const runOnce = async (ordered) => {
    const model = await compiledAt(ordered[0].shape[0]);
    const xs = ordered.map((x) => new litert.Tensor(x.data, x.shape));
    let ys;
    try {
      ys = await model.run(Object.fromEntries(inputs.map((name, i) => [name, xs[i]])));
    } finally {
      xs.forEach((x) => x.delete());
    }
    const out = [];
    try {
      for (const name of outputs) {
        // A WebGPU result is read after it is moved to host memory ('wasm').
        const y = ys[name].accelerator === 'wasm' ? ys[name] : await ys[name].moveTo('wasm');
        ys[name] = y;
        const data = y.toTypedArray();
        out.push({ dtype: y.type.dtype, shape: Array.from(y.type.layout.dimensions), data });
      }
    } finally {
      Object.values(ys).forEach((y) => y.delete());
    }
    await guard(`running the model at a batch of ${ordered[0].shape[0]}`); // after the read-back too
    return out;
  };

  const run = async (arrays, names) => {
    const ordered = byName(arrays, names, inputs, where);
    if (!sizes) return runOnce(ordered);
    const pieces = staticPieces(ordered[0].shape[0], sizes);
    const parts = [];
    for (const { start, count, size } of pieces) {
      parts.push(await runOnce(ordered.map((x) => rows(x, start, count, size))));
    }
    return parts.length === 1 && pieces[0].count === pieces[0].size
      ? parts[0]
      : joined(parts, pieces);
  };

  return {
    inputs,
    outputs,
    compiledAt,
    run,
    staticBatches: sizes,
    dispose: () => {
      compiled.forEach((model) => model.delete());
      compiled.clear();
    },
  };
}

module.exports = { tfliteRunner, staticPieces };
