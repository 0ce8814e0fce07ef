'use strict';
// A .tflite whose batch dimension is fixed to a given size, for LiteRT.js.
// `convert --format tflite` keeps the batch dynamic (-1 in each tensor's
// shape_signature), which Python's interpreter resizes; LiteRT.js 2.5 has no
// resize and refuses any input against a -1 ("does not match expected ranked
// tensor type Float32[-1, 28, 28]"). The batch is the only unknown dimension
// the converter leaves (an unknown time axis is refused as Flex ops), so
// writing B over every -1, in shape_signature and in shape (where the
// converter put 1), gives the model at batch B: the same bytes otherwise,
// the same arithmetic. The file is a FlatBuffer; the two int vectors are
// rewritten in place, so nothing moves. No Node built-in: the page runs it.
// (The FlatBuffer is read by tflite_graph.js.)
const { SLOTS, tfliteView, reader } = require('./tflite_graph');

/**
 * A copy of `bytes` (a .tflite) with its batch fixed to `batch`; throws when
 * an input has another unknown dimension, or when the batch is fixed
 * already to a different size.
 */
function fixTfliteBatch(bytes, batch) {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be >= 1, got ${batch}`);
  const out = new Uint8Array(bytes); // a copy
  const view = tfliteView(out);
  const { ref, vector, int32s } = reader(view);
  const subgraphs = vector(ref(0), SLOTS.MODEL_SUBGRAPHS);
  let fixed = 0;
  for (let s = 0; s < (subgraphs ? subgraphs.length : 0); s++) {
    const subgraph = ref(subgraphs.start + 4 * s);
    const tensors = vector(subgraph, SLOTS.SUBGRAPH_TENSORS);
    const tensorAt = (t) => ref(tensors.start + 4 * t);
    for (const input of int32s(vector(subgraph, SLOTS.SUBGRAPH_INPUTS))) {
      const table = tensorAt(input);
      const signature = int32s(vector(table, SLOTS.TENSOR_SHAPE_SIGNATURE));
      const shape = int32s(vector(table, SLOTS.TENSOR_SHAPE));
      if (signature.slice(1).includes(-1)) {
        throw new Error(
          `input tensor ${input} has an unknown dimension besides the batch ` +
            `[${signature.join(', ')}]: LiteRT.js takes static shapes only`,
        );
      }
      if (s === 0 && signature[0] !== -1 && shape[0] !== batch) {
        throw new Error(`the model's batch is fixed at ${shape[0]}, not ${batch}`);
      }
    }
    for (let t = 0; t < tensors.length; t++) {
      const table = tensorAt(t);
      const signature = vector(table, SLOTS.TENSOR_SHAPE_SIGNATURE);
      const shape = vector(table, SLOTS.TENSOR_SHAPE);
      if (!signature || !shape || signature.length !== shape.length) continue;
      for (let i = 0; i < signature.length; i++) {
        if (view.getInt32(signature.start + 4 * i, true) !== -1) continue;
        view.setInt32(signature.start + 4 * i, batch, true);
        view.setInt32(shape.start + 4 * i, batch, true);
        fixed++;
      }
    }
  }
  return { bytes: out, fixed };
}

module.exports = { fixTfliteBatch };
