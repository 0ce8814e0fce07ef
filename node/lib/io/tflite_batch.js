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
//
// TFLite's schema (tensorflow/lite/schema/schema.fbs): Model.subgraphs is
// field 2, SubGraph.tensors field 0, SubGraph.inputs field 1, Tensor.shape
// field 0, Tensor.shape_signature field 7.
const MODEL_SUBGRAPHS = 2;
const SUBGRAPH_TENSORS = 0;
const SUBGRAPH_INPUTS = 1;
const TENSOR_SHAPE = 0;
const TENSOR_SHAPE_SIGNATURE = 7;

/** Reading a FlatBuffer's tables and vectors in `view` (little-endian, as FlatBuffers are). */
function reader(view) {
  const u32 = (at) => view.getUint32(at, true);
  const ref = (at) => at + u32(at); // a uoffset, from where it is stored
  const field = (table, slot) => {
    const vtable = table - view.getInt32(table, true);
    const entry = 4 + 2 * slot;
    const offset = entry < view.getUint16(vtable, true) ? view.getUint16(vtable + entry, true) : 0;
    return offset ? table + offset : 0; // 0: the field is absent
  };
  /** {start, length} of a vector field, or null when absent. */
  const vector = (table, slot) => {
    const at = field(table, slot);
    if (!at) return null;
    const start = ref(at);
    return { start: start + 4, length: u32(start) };
  };
  const int32s = (vec) =>
    vec ? Array.from({ length: vec.length }, (_, i) => view.getInt32(vec.start + 4 * i, true)) : [];
  return { ref, vector, int32s };
}

/**
 * A copy of `bytes` (a .tflite) with its batch fixed to `batch`; throws when
 * an input has another unknown dimension, or when the batch is fixed
 * already to a different size.
 */
function fixTfliteBatch(bytes, batch) {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be >= 1, got ${batch}`);
  const out = new Uint8Array(bytes); // a copy
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const tag = String.fromCharCode(...out.subarray(4, 8));
  if (out.length < 8 || tag !== 'TFL3') throw new Error('not a .tflite file (no TFL3 identifier)');
  const { ref, vector, int32s } = reader(view);
  const subgraphs = vector(ref(0), MODEL_SUBGRAPHS);
  let fixed = 0;
  for (let s = 0; s < (subgraphs ? subgraphs.length : 0); s++) {
    const subgraph = ref(subgraphs.start + 4 * s);
    const tensors = vector(subgraph, SUBGRAPH_TENSORS);
    const tensorAt = (t) => ref(tensors.start + 4 * t);
    for (const input of int32s(vector(subgraph, SUBGRAPH_INPUTS))) {
      const table = tensorAt(input);
      const signature = int32s(vector(table, TENSOR_SHAPE_SIGNATURE));
      const shape = int32s(vector(table, TENSOR_SHAPE));
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
      const signature = vector(table, TENSOR_SHAPE_SIGNATURE);
      const shape = vector(table, TENSOR_SHAPE);
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
