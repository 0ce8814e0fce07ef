'use strict';
// The Node half of the tensor exchange format: binary .npy files.
// Reading uses npyjs; npyjs cannot write, so writing is the few lines below
// (magic, version 1.0, a Python-dict header padded to 64 bytes, raw bytes).
const fs = require('fs');
const { parse } = require('npyjs');

const DESCR_BY_ARRAY = new Map([
  [Float32Array, '<f4'],
  [Float64Array, '<f8'],
  [Int32Array, '<i4'],
  [Uint8Array, '|u1'],
]);

/** Reads a .npy file into {data: TypedArray, shape: number[], dtype: string}. */
function readNpy(path) {
  let bytes;
  try {
    bytes = fs.readFileSync(path);
  } catch (err) {
    throw new Error(`${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let parsed;
  try {
    parsed = parse(buffer);
  } catch (err) {
    throw new Error(`${path}: not a readable .npy file (${err.message})`);
  }
  if (parsed.fortranOrder) throw new Error(`${path}: Fortran-ordered arrays are not supported`);
  return { data: parsed.data, shape: parsed.shape, dtype: parsed.dtype };
}

/** Encodes a typed array and its shape as .npy bytes. */
function encodeNpy(data, shape) {
  const descr = DESCR_BY_ARRAY.get(data.constructor);
  if (!descr) throw new Error(`cannot write ${data.constructor.name} to .npy`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new Error(`shape [${shape}] holds ${count} values but the array has ${data.length}`);
  }
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const preamble = 10; // magic (6) + version (2) + header length (2)
  header += ' '.repeat(63 - ((preamble + header.length) % 64)) + '\n';
  const head = Buffer.alloc(preamble + header.length);
  head.write('\x93NUMPY', 0, 'latin1');
  head.writeUInt8(1, 6);
  head.writeUInt8(0, 7);
  head.writeUInt16LE(header.length, 8);
  head.write(header, preamble, 'latin1');
  return Buffer.concat([head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** Writes a .npy file atomically: a reader never sees half of it. */
function writeNpy(path, data, shape) {
  const tmp = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, encodeNpy(data, shape));
  fs.renameSync(tmp, path);
}

module.exports = { readNpy, writeNpy, encodeNpy };
