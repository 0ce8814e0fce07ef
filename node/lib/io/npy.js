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

const ITEM_BYTES = {
  b1: 1,
  i1: 1,
  u1: 1,
  i2: 2,
  u2: 2,
  f2: 2,
  i4: 4,
  u4: 4,
  f4: 4,
  i8: 8,
  u8: 8,
  f8: 8,
};
const MAX_NPY_BYTES = 2 * 2 ** 30;
const DTYPE_NAMES = {
  f2: 'float16',
  f4: 'float32',
  f8: 'float64',
  i1: 'int8',
  i2: 'int16',
  i4: 'int32',
  i8: 'int64',
  u1: 'uint8',
  u2: 'uint16',
  u4: 'uint32',
  u8: 'uint64',
  b1: 'bool',
};

/**
 * The header's promise, checked against the file before npyjs reads it: the
 * shape times the item size must be exactly the bytes that follow, and below
 * 2 GiB (a lying or absurd header is refused without allocating anything).
 */
function checkNpyHeader(path, bytes) {
  if (bytes.length < 10 || bytes.toString('latin1', 0, 6) !== '\x93NUMPY') {
    throw new Error(`${path}: not a .npy file (no NUMPY magic)`);
  }
  const major = bytes[6];
  const headerStart = major === 1 ? 10 : 12;
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  if (headerStart + headerLength > bytes.length)
    throw new Error(`${path}: .npy header runs past the end of the file`);
  const header = bytes.toString('latin1', headerStart, headerStart + headerLength);
  const descr = /'descr':\s*'([<>|=])([a-z]\d+)'/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shape || !ITEM_BYTES[descr[2]])
    throw new Error(`${path}: unreadable or unsupported .npy header ${header.trim()}`);
  const dims = shape[1]
    .split(',')
    .map((d) => d.trim())
    .filter(Boolean)
    .map(Number);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw new Error(`${path}: impossible shape (${shape[1]})`);
  const declared = dims.reduce((a, b) => a * b, 1) * ITEM_BYTES[descr[2]];
  const held = bytes.length - headerStart - headerLength;
  if (declared > MAX_NPY_BYTES)
    throw new Error(
      `${path}: header declares shape [${dims.join(', ')}] (${declared} bytes), over the ${MAX_NPY_BYTES}-byte limit`,
    );
  if (declared !== held)
    throw new Error(
      `${path}: header declares shape [${dims.join(', ')}] (${declared} bytes) but the file holds ${held}`,
    );
}

/** Reads a .npy file into {data: TypedArray, shape: number[], dtype: string}. */
function readNpy(path) {
  let bytes;
  try {
    if (fs.statSync(path).size > MAX_NPY_BYTES + 65536)
      throw new Error(`larger than ${MAX_NPY_BYTES} bytes`);
    bytes = fs.readFileSync(path);
  } catch (err) {
    throw new Error(
      `${path}: ${err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'a folder, not a .npy file' : err.message}`,
      { cause: err },
    );
  }
  return decodeNpy(bytes, path);
}

/** .npy bytes (a file's, or a request body's) as {data, shape, dtype}; `where` names them in errors. */
function decodeNpy(bytes, where) {
  bytes = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  checkNpyHeader(where, bytes);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let parsed;
  try {
    parsed = parse(buffer);
  } catch (err) {
    throw new Error(`${where}: not a readable .npy file (${err.message})`, { cause: err });
  }
  if (parsed.fortranOrder) throw new Error(`${where}: Fortran-ordered arrays are not supported`);
  // npyjs names dtypes as .npy does ('f4'); callers get numpy's names ('float32').
  return {
    data: parsed.data,
    shape: parsed.shape,
    dtype: DTYPE_NAMES[parsed.dtype] || parsed.dtype,
  };
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

module.exports = { readNpy, decodeNpy, writeNpy, encodeNpy, MAX_NPY_BYTES };
