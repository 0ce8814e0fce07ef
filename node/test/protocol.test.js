'use strict';
// The worker's frames: split anywhere by the pipe, they come back whole and bit-exact.
const test = require('node:test');
const assert = require('node:assert/strict');
const { encodeFrame, FrameReader } = require('../lib/io/protocol');

test('frames survive being split at every byte', () => {
  const data = new Float32Array([1.5, -0, NaN, 3.4e38, 1e-45]);
  const ints = new Int32Array([-1, 2 ** 31 - 1]);
  const frame = encodeFrame({ id: 7, op: 'predict' }, [
    { dtype: 'float32', shape: [5], data },
    { dtype: 'int32', shape: [1, 2], data: ints },
  ]);
  for (let cut = 0; cut <= frame.length; cut++) {
    const reader = new FrameReader();
    const frames = [...reader.push(frame.subarray(0, cut)), ...reader.push(frame.subarray(cut))];
    assert.equal(frames.length, 1);
    const [msg] = frames;
    assert.equal(msg.id, 7);
    assert.deepEqual(Buffer.from(msg.tensors[0].data.buffer), Buffer.from(data.buffer));
    assert.deepEqual(Array.from(msg.tensors[1].data), Array.from(ints));
    assert.deepEqual(msg.tensors[1].shape, [1, 2]);
  }
});

test('a header that lies about a tensor is refused', () => {
  const head = Buffer.from(
    JSON.stringify({
      id: 1,
      op: 'predict',
      tensors: [{ dtype: 'float32', shape: [1000], nbytes: 4 }],
    }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length);
  assert.throws(
    () => new FrameReader().push(Buffer.concat([len, head, Buffer.alloc(4)])),
    /cannot hold 4 bytes/,
  );
});

test('unknown dtypes and giant headers are refused', () => {
  const bad = encodeFrame({ id: 1 }, []);
  const lying = Buffer.from(bad);
  lying.writeUInt32LE(1 << 30, 0);
  assert.throws(() => new FrameReader().push(lying), /too large/);
  const head = Buffer.from(
    JSON.stringify({ id: 1, tensors: [{ dtype: 'complex64', shape: [1], nbytes: 8 }] }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length);
  assert.throws(
    () => new FrameReader().push(Buffer.concat([len, head, Buffer.alloc(8)])),
    /unsupported dtype/,
  );
});
