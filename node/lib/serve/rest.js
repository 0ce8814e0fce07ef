'use strict';
// TensorFlow Serving's REST predict API, as its clients speak it
// (https://www.tensorflow.org/tfx/serving/api_rest), read into checked arrays
// and written back:
//   {"instances": [...]}  row format: one entry per sample; with several
//                         inputs, each entry is an object by input name
//   {"inputs": ...}       columnar format: the whole batch, or an object by
//                         input name
// answered as {"predictions": [...]} (row) or {"outputs": ...} (columnar),
// and errors as {"error": "one line"}. Binary bodies (.npy for one input,
// .npz for several) skip JSON both ways. Every array passes the checks of
// every entry point (io/inputs.js) before it can reach a model.
const { checkInput } = require('../io/inputs');
const { DTYPES } = require('../io/protocol');
const { decodeNpy, encodeNpy } = require('../io/npy');
const { decodeNpz, encodeNpz } = require('../io/npz');

/** A client's mistake: answered with 400 (or `status`) and never run. */
class RequestError extends Error {
  constructor(message, status = 400, kind = 'bad_request') {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

/** The shape of a nested JSON list, read along its first entries. */
function shapeOf(value) {
  const shape = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  return shape;
}

/** Flattens `value` into `out` from `offset`, checking it is a full [shape] array of numbers. */
function flatten(value, shape, depth, out, offset, where, integers) {
  if (depth === shape.length) {
    if (typeof value !== 'number')
      throw new RequestError(`${where}: ${JSON.stringify(value)} is not a number`);
    if (integers && !Number.isInteger(value))
      throw new RequestError(`${where}: token id ${value} is not an integer`);
    out[offset] = value;
    return offset + 1;
  }
  if (!Array.isArray(value) || value.length !== shape[depth])
    throw new RequestError(`${where}: ragged array (every sample must have the same shape)`);
  for (const item of value) offset = flatten(item, shape, depth + 1, out, offset, where, integers);
  return offset;
}

/**
 * A JSON batch (a list of samples) as a checked typed array of the input's
 * dtype. Token ids are checked as numbers first: an Int32Array would
 * silently wrap or truncate a bad one.
 */
function arrayFrom(samples, spec, where, only) {
  if (!Array.isArray(samples) || samples.length === 0)
    throw new RequestError(`${where}: expected a non-empty list of samples`);
  const shape = shapeOf(samples);
  const Type = DTYPES[spec.dtype];
  const count = shape.reduce((a, b) => a * b, 1);
  const values = spec.dtype === 'int32' ? new Float64Array(count) : new Type(count);
  flatten(samples, shape, 0, values, 0, where, spec.kind === 'tokens');
  checked({ data: values, shape, dtype: spec.dtype }, where, spec, only);
  return { data: values instanceof Type ? values : Type.from(values), shape, dtype: spec.dtype };
}

/** Runs io/inputs.js's check, turning its error into a client's. */
function checked(array, where, spec, only) {
  try {
    return checkInput(array, where, spec, false, only, ': the model takes finite values');
  } catch (err) {
    throw new RequestError(err.message);
  }
}

/** The named entries of an object body, each a known input, all present. */
function byInputName(object, specs, where) {
  const names = specs.map((s) => s.name);
  const given = Object.keys(object);
  const unknown = given.filter((k) => !names.includes(k));
  if (unknown.length)
    throw new RequestError(
      `${where}: unknown input ${unknown[0]} (the model's inputs: ${names.join(', ')})`,
    );
  const missing = names.filter((k) => !given.includes(k));
  if (missing.length) throw new RequestError(`${where}: input ${missing[0]} is missing`);
  return object;
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * A parsed JSON body as {format: 'row'|'columnar', arrays}: one checked array
 * per model input, in the signature's order.
 */
function readJsonRequest(body, signature) {
  const specs = signature.inputs;
  const only = specs.length === 1;
  if (!isObject(body)) throw new RequestError('the body must be a JSON object');
  const { signature_name: signatureName, instances, inputs, ...rest } = body;
  const extra = Object.keys(rest);
  if (extra.length)
    throw new RequestError(`unknown field '${extra[0]}' (expected instances or inputs)`);
  if (signatureName !== undefined && signatureName !== 'serving_default')
    throw new RequestError(
      `unknown signature_name '${signatureName}' (this model has serving_default)`,
    );
  if ((instances === undefined) === (inputs === undefined))
    throw new RequestError(
      'the body needs exactly one of "instances" (row) or "inputs" (columnar)',
    );

  if (instances !== undefined) {
    if (!Array.isArray(instances) || instances.length === 0)
      throw new RequestError('instances: expected a non-empty list');
    const named = instances.every(isObject);
    if (!only && !named)
      throw new RequestError(
        `instances: the model takes ${specs.length} inputs: each instance must be an object by input name (${specs.map((s) => s.name).join(', ')})`,
      );
    const arrays = specs.map((spec) => {
      const where = only ? 'instances' : `instances: input ${spec.name}`;
      const samples = named
        ? instances.map((instance, i) => byInputName(instance, specs, `instances[${i}]`)[spec.name])
        : instances;
      return arrayFrom(samples, spec, where, only);
    });
    return { format: 'row', arrays };
  }
  const columns = !only || isObject(inputs) ? byInputName(inputs, specs, 'inputs') : null;
  const arrays = specs.map((spec) => {
    const where = only ? 'inputs' : `inputs: input ${spec.name}`;
    return arrayFrom(columns ? columns[spec.name] : inputs, spec, where, only);
  });
  return { format: 'columnar', arrays };
}

/** A binary body: .npy for a one-input model, .npz (arrays by input name) for any. */
function readBinaryRequest(bytes, kind, signature, maxBytes) {
  const specs = signature.inputs;
  const only = specs.length === 1;
  let named;
  try {
    if (kind === 'npy') {
      if (!only)
        throw new RequestError(
          `the model takes ${specs.length} inputs: send an .npz with arrays named ${specs.map((s) => s.name).join(', ')}`,
        );
      named = { [specs[0].name]: decodeNpy(bytes, 'body') };
    } else {
      named = byInputName(decodeNpz(bytes, 'body', maxBytes), specs, 'body');
    }
  } catch (err) {
    throw err instanceof RequestError ? err : new RequestError(err.message);
  }
  const arrays = specs.map((spec) => {
    const where = only ? 'body' : `body: input ${spec.name}`;
    return checked(named[spec.name], where, spec, only);
  });
  return { format: kind, arrays };
}

/** Row-major nested lists of `data` (a flat typed array) in `shape`. */
function nested(data, shape, offset = 0, depth = 0) {
  if (depth === shape.length) return data[offset];
  const stride = shape.slice(depth + 1).reduce((a, b) => a * b, 1);
  return Array.from({ length: shape[depth] }, (_, i) =>
    nested(data, shape, offset + i * stride, depth + 1),
  );
}

/** Sample i of a [N, ...] array as nested lists (a number for [N]). */
function sample(array, i) {
  const rest = array.shape.slice(1);
  const size = rest.reduce((a, b) => a * b, 1);
  return nested(array.data, rest, i * size);
}

/**
 * The answer in the request's format: outputs are {name: {data, shape, dtype}},
 * in the model's order. Returns {contentType, payload}.
 */
function writeResponse(format, outputs) {
  const names = Object.keys(outputs);
  const only = names.length === 1;
  if (format === 'npy' || format === 'npz') {
    if (only && format === 'npy') {
      const { data, shape } = outputs[names[0]];
      return { contentType: 'application/x-npy', payload: encodeNpy(data, shape) };
    }
    return { contentType: 'application/x-npz', payload: encodeNpz(outputs) };
  }
  if (format === 'columnar') {
    const value = only
      ? nested(outputs[names[0]].data, outputs[names[0]].shape)
      : Object.fromEntries(names.map((n) => [n, nested(outputs[n].data, outputs[n].shape)]));
    return { contentType: 'application/json', payload: JSON.stringify({ outputs: value }) };
  }
  const count = outputs[names[0]].shape[0];
  const predictions = Array.from({ length: count }, (_, i) =>
    only
      ? sample(outputs[names[0]], i)
      : Object.fromEntries(names.map((n) => [n, sample(outputs[n], i)])),
  );
  return { contentType: 'application/json', payload: JSON.stringify({ predictions }) };
}

const DT = { float32: 'DT_FLOAT', int32: 'DT_INT32' };

/** A tensor_shape as TF Serving's metadata writes it: -1 for a free axis. */
const tensorShape = (shape) => ({
  dim: [null, ...shape].map((d) => ({ size: String(d === null ? -1 : d), name: '' })),
  unknown_rank: false,
});

/** GET /v1/models/NAME/metadata, as TF Serving answers it (plus the path it runs on). */
function metadata(name, model) {
  const inputs = Object.fromEntries(
    model.signature.inputs.map((s) => [
      s.name,
      { dtype: DT[s.dtype], tensor_shape: tensorShape(s.shape), name: `${s.name}:0` },
    ]),
  );
  const outputs = Object.fromEntries(
    model.outputs.map((o) => [
      o.name,
      { dtype: DT[o.dtype] || 'DT_FLOAT', tensor_shape: tensorShape(o.shape), name: `${o.name}:0` },
    ]),
  );
  return {
    model_spec: { name, signature_name: '', version: String(model.version) },
    metadata: {
      signature_def: {
        signature_def: {
          serving_default: { inputs, outputs, method_name: 'tensorflow/serving/predict' },
        },
      },
    },
    tfjs_bridge: { path: model.runtime, why: model.why, model_dir: model.dir },
  };
}

/** GET /v1/models/NAME, as TF Serving answers it. */
const status = (model) => ({
  model_version_status: [
    {
      version: String(model.version),
      state: 'AVAILABLE',
      status: { error_code: 'OK', error_message: '' },
    },
  ],
});

module.exports = {
  RequestError,
  readJsonRequest,
  readBinaryRequest,
  writeResponse,
  sample,
  metadata,
  status,
};
