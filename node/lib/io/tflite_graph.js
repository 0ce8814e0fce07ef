'use strict';
// Reading a .tflite's graph (a FlatBuffer, tensorflow/lite/schema/schema.fbs):
// the one reader of the format in Node, used to fix a batch in place
// (tflite_batch.js) and to name the node LiteRT.js reports by number when an
// invoke fails (browser/litert_webgpu.js). No Node built-in: a page runs it.
//
// Fields by slot: Model.operator_codes 1, Model.subgraphs 2; SubGraph.tensors
// 0, inputs 1, operators 3; Tensor.shape 0, name 3, shape_signature 7;
// Operator.opcode_index 0, inputs 1, outputs 2; OperatorCode.
// deprecated_builtin_code 0 (int8), custom_code 1, builtin_code 3 (int32).
const SLOTS = {
  MODEL_OPERATOR_CODES: 1,
  MODEL_SUBGRAPHS: 2,
  SUBGRAPH_TENSORS: 0,
  SUBGRAPH_INPUTS: 1,
  SUBGRAPH_OPERATORS: 3,
  TENSOR_SHAPE: 0,
  TENSOR_NAME: 3,
  TENSOR_SHAPE_SIGNATURE: 7,
  OPERATOR_OPCODE_INDEX: 0,
  OPERATOR_INPUTS: 1,
  OPERATOR_OUTPUTS: 2,
  CODE_DEPRECATED_BUILTIN: 0,
  CODE_CUSTOM: 1,
  CODE_BUILTIN: 3,
};
// schema.fbs: builtin codes above 127 live in builtin_code; below, either field.
const PLACEHOLDER_FOR_GREATER_OP_CODES = 127;

/** A DataView over `bytes`, after checking the TFL3 identifier. */
function tfliteView(bytes) {
  const tag = bytes.length >= 8 ? String.fromCharCode(...bytes.subarray(4, 8)) : '';
  if (tag !== 'TFL3') throw new Error('not a .tflite file (no TFL3 identifier)');
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

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
  const tables = (vec) =>
    vec ? Array.from({ length: vec.length }, (_, i) => ref(vec.start + 4 * i)) : [];
  const string = (table, slot) => {
    const vec = vector(table, slot);
    if (!vec) return null;
    const bytes = new Uint8Array(view.buffer, view.byteOffset + vec.start, vec.length);
    return new TextDecoder().decode(bytes);
  };
  const scalar = (table, slot, get, fallback = 0) => {
    const at = field(table, slot);
    return at ? get(at) : fallback;
  };
  return { ref, vector, int32s, tables, string, scalar };
}

/**
 * The first subgraph's operators in execution order (a TFLite node's number
 * is its index here; delegate nodes come after them): each {index, op (its
 * builtin name from `opNames`, or the custom op's), outputs: [{name, shape}]}.
 */
function tfliteOperators(bytes, opNames) {
  const view = tfliteView(bytes);
  const { ref, vector, int32s, tables, string, scalar } = reader(view);
  const model = ref(0);
  const codes = tables(vector(model, SLOTS.MODEL_OPERATOR_CODES)).map((code) => {
    const custom = string(code, SLOTS.CODE_CUSTOM);
    if (custom) return custom;
    const deprecated = scalar(code, SLOTS.CODE_DEPRECATED_BUILTIN, (at) => view.getInt8(at));
    const builtin = scalar(code, SLOTS.CODE_BUILTIN, (at) => view.getInt32(at, true));
    const number = Math.max(deprecated, builtin);
    if (deprecated === PLACEHOLDER_FOR_GREATER_OP_CODES && builtin === 0) return 'BUILTIN_127';
    return opNames[number] || `BUILTIN_${number}`;
  });
  const [subgraph] = tables(vector(model, SLOTS.MODEL_SUBGRAPHS));
  const tensors = tables(vector(subgraph, SLOTS.SUBGRAPH_TENSORS));
  const tensor = (t) => ({
    name: string(tensors[t], SLOTS.TENSOR_NAME),
    shape: int32s(vector(tensors[t], SLOTS.TENSOR_SHAPE)),
  });
  return tables(vector(subgraph, SLOTS.SUBGRAPH_OPERATORS)).map((op, index) => ({
    index,
    op: codes[scalar(op, SLOTS.OPERATOR_OPCODE_INDEX, (at) => view.getUint32(at, true))],
    inputs: int32s(vector(op, SLOTS.OPERATOR_INPUTS))
      .filter((t) => t >= 0)
      .map(tensor),
    outputs: int32s(vector(op, SLOTS.OPERATOR_OUTPUTS))
      .filter((t) => t >= 0)
      .map(tensor),
  }));
}

module.exports = { SLOTS, tfliteView, reader, tfliteOperators };
