'use strict';
// How tensors cross between a browser page and Node (driver.js <->
// page.js, litert_page.js, ort_page.js): base64 of their raw little-endian
// bytes, so every bit survives (NaN payloads, -0.0). Written once for every
// page engine.

const TYPES = { float32: Float32Array, int32: Int32Array };

/** A typed array's bytes as base64. */
function toBase64(typed) {
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** {dtype, shape, b64} back to {dtype, shape, data}. */
function fromBase64({ dtype, shape, b64 }) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return { dtype, shape, data: new TYPES[dtype](bytes.buffer) };
}

module.exports = { TYPES, toBase64, fromBase64 };
