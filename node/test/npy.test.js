'use strict';
// The .npy writer and npyjs reader agree, bit for bit, on the values that
// decimal text would lose.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { readNpy, writeNpy, encodeNpy } = require('../lib/io/npy');

test('float32 special values survive write + read bit-exactly', () => {
  const bits = new Uint32Array([
    0x7fc00000, 0xffc00000, 0x7f800000, 0xff800000, 0x80000000, 0x00000001, 0x00400000, 0x807fffff,
    0x7f7fffff, 0x7fc00001,
  ]);
  const data = new Float32Array(bits.buffer);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'npy-')), 'x.npy');
  writeNpy(file, data, [2, 5]);
  const back = readNpy(file);
  assert.deepEqual(back.shape, [2, 5]);
  assert.ok(back.data instanceof Float32Array);
  assert.deepEqual(new Uint32Array(back.data.buffer, back.data.byteOffset, 10), bits);
});

test('header is padded so data starts on a 64-byte boundary', () => {
  for (const shape of [[1], [3, 4], [2, 28, 28], [10000, 28, 28]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    const bytes = encodeNpy(new Float32Array(n), shape);
    const headerLength = bytes.readUInt16LE(8);
    assert.equal((10 + headerLength) % 64, 0);
    assert.equal(bytes.length, 10 + headerLength + 4 * n);
  }
});

test('a shape that does not match the data is refused', () => {
  assert.throws(() => encodeNpy(new Float32Array(5), [2, 3]), /shape \[2,3\] holds 6 values/);
});

test('a missing file names the file', () => {
  assert.throws(() => readNpy('/nonexistent/x.npy'), /\/nonexistent\/x.npy: no such file/);
});

// Bad .npy files are refused from their header, before anything is allocated.
const fsTest = require('fs');
const osTest = require('os');
const pathTest = require('path');

function writeTemp(name, bytes) {
  const dir = fsTest.mkdtempSync(pathTest.join(osTest.tmpdir(), 'npy-'));
  const file = pathTest.join(dir, name);
  fsTest.writeFileSync(file, bytes);
  return file;
}

/** A version-1.0 .npy whose header claims `shape` over `payload` bytes. */
function lyingNpy(shapeText, payload) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head.writeUInt8(1, 6);
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.alloc(payload)]);
}

for (const [name, bytes, message] of [
  ['not npy', Buffer.from('1,2,3\n'), /not a \.npy file \(no NUMPY magic\)/],
  [
    'header lies',
    lyingNpy('(1000, 1, 1)', 12),
    /header declares shape \[1000, 1, 1\] \(4000 bytes\) but the file holds 12/,
  ],
  ['memory bomb', lyingNpy('(1000000000000, 1, 1)', 12), /over the 2147483648-byte limit/],
  ['negative dim', lyingNpy('(-1, 3)', 12), /impossible shape/],
  [
    'header past the end',
    Buffer.concat([lyingNpy('(3,)', 12).subarray(0, 20)]),
    /header runs past the end/,
  ],
]) {
  test(`readNpy refuses a file that is ${name}`, () => {
    const file = writeTemp('x.npy', bytes);
    assert.throws(
      () => readNpy(file),
      (err) => err.message.startsWith(`${file}: `) && message.test(err.message),
    );
  });
}
