'use strict';
// A .tflite in LiteRT.js (@litertjs/core) behind runners.js's interface
// (run(arrays, names) -> plain outputs), for a page and a Node process alike
// (browser/litert_page.js, runtime/litert_node.js); it takes the litert module
// it is given, so it bundles into a page without one. LiteRT.js takes static
// shapes only, so each batch size gets its own compiled model, from a copy of
// the file with the batch fixed (io/tflite_batch.js), a few kept; each is
// checked to be compiled for the accelerator asked for, and fully (LiteRT.js
// otherwise falls back to WASM quietly).
const { fixTfliteBatch } = require('../io/tflite_batch');
const { byName } = require('./runners');

const COMPILED_KEPT = 4; // compiled batch sizes kept per model (verify uses 2: its chunk and 1)

/** The model in `bytes` on `accelerator` ('wasm' | 'webgpu'), compiled at a batch of one to read its names. */
async function tfliteRunner(litert, bytes, accelerator, where) {
  const compiled = new Map(); // batch -> CompiledModel
  const compiledAt = async (batch) => {
    if (compiled.has(batch)) return compiled.get(batch);
    const model = await litert.loadAndCompile(fixTfliteBatch(bytes, batch).bytes, {
      accelerator,
    });
    const used = model.options.accelerator;
    if (used !== accelerator) {
      model.delete();
      throw new Error(`LiteRT.js compiled the model for ${used}, not ${accelerator}`);
    }
    if (accelerator !== 'wasm' && !model.isFullyAccelerated) {
      model.delete();
      throw new Error(`LiteRT.js put only part of the model on ${accelerator}`);
    }
    if (compiled.size >= COMPILED_KEPT) {
      const [oldest, kept] = compiled.entries().next().value;
      kept.delete();
      compiled.delete(oldest);
    }
    compiled.set(batch, model);
    return model;
  };
  const first = await compiledAt(1);
  const inputs = first.getInputDetails().map((d) => d.name);
  // Sorted, as Python sorts a signature's outputs (parity/truth.py).
  const outputs = first.getOutputDetails().map((d) => d.name);
  outputs.sort();

  const run = async (arrays, names) => {
    const ordered = byName(arrays, names, inputs, where);
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
    return out;
  };

  return {
    inputs,
    outputs,
    compiledAt,
    run,
    dispose: () => {
      compiled.forEach((model) => model.delete());
      compiled.clear();
    },
  };
}

module.exports = { tfliteRunner };
