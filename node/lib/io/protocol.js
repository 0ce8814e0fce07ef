'use strict';
// The worker's framed protocol on stdin/stdout (the Python side is
// py/tfjs_bridge/runtime/worker_process.py). Every message, either way, is one frame:
//   uint32 little-endian  length of the header
//   header                UTF-8 JSON: {id, op | ok, ..., tensors: [{dtype, shape, nbytes}]}
//   payload               the tensors' raw little-endian bytes, one after another
const DTYPES = { float32: Float32Array, int32: Int32Array };
const MAX_HEADER_BYTES = 1 << 20;

function encodeFrame(header, arrays = []) {
  const tensors = arrays.map(({ dtype, shape, data }) => ({
    dtype,
    shape,
    nbytes: data.byteLength,
  }));
  const head = Buffer.from(JSON.stringify({ ...header, tensors }), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(head.length, 0);
  const payload = arrays.map(({ data }) =>
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  );
  return Buffer.concat([length, head, ...payload]);
}

/** Splits a byte stream into frames: push(chunk) returns the frames completed so far. */
class FrameReader {
  constructor() {
    this.buffer = Buffer.alloc(0);
    this.pending = []; // chunks not yet joined: joining each time would copy O(n²)
    this.pendingBytes = 0;
    this.needed = 4; // bytes the next frame needs before it can be parsed
  }

  push(chunk) {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.buffer.length + this.pendingBytes < this.needed) return [];
    this.buffer = Buffer.concat([this.buffer, ...this.pending]);
    this.pending = [];
    this.pendingBytes = 0;
    const frames = [];
    for (;;) {
      this.needed = 4;
      if (this.buffer.length < 4) break;
      const headLength = this.buffer.readUInt32LE(0);
      if (headLength > MAX_HEADER_BYTES)
        throw new Error(`frame header of ${headLength} bytes is too large`);
      this.needed = 4 + headLength;
      if (this.buffer.length < 4 + headLength) break;
      const header = JSON.parse(this.buffer.subarray(4, 4 + headLength).toString('utf8'));
      const specs = header.tensors || [];
      const payloadLength = specs.reduce((sum, t) => sum + t.nbytes, 0);
      const end = 4 + headLength + payloadLength;
      this.needed = end;
      if (this.buffer.length < end) break;
      let offset = 4 + headLength;
      header.tensors = specs.map((t) => {
        const Type = DTYPES[t.dtype];
        if (!Type)
          throw new Error(
            `unsupported dtype '${t.dtype}' (known: ${Object.keys(DTYPES).join(', ')})`,
          );
        const count = t.shape.reduce((a, b) => a * b, 1);
        if (count * Type.BYTES_PER_ELEMENT !== t.nbytes) {
          throw new Error(`tensor of shape [${t.shape}] ${t.dtype} cannot hold ${t.nbytes} bytes`);
        }
        // Copy: a typed array needs an aligned offset of its own buffer.
        const bytes = Uint8Array.prototype.slice.call(this.buffer, offset, offset + t.nbytes);
        offset += t.nbytes;
        return { dtype: t.dtype, shape: t.shape, data: new Type(bytes.buffer) };
      });
      frames.push(header);
      this.buffer = this.buffer.subarray(end);
    }
    return frames;
  }
}

module.exports = { DTYPES, encodeFrame, FrameReader };
