'use strict';
// PNG files read into RGBA bytes (pngjs: every colour type and bit depth
// PNG has, 16-bit scaled to 8, palettes expanded), and pictures of digits
// made gru's input (predict.js --image, scripts/digit-image.js).
const fs = require('fs');
const { PNG } = require('pngjs');
const { inkFromRgba, mnistDigit, SIDE } = require('./digit_image');

const MAX_PIXELS = 50e6; // a 7,000 x 7,000 photo; beyond it, refused before decoding

/** {rgba: Uint8Array (4 bytes a pixel), width, height} of a PNG file; one-line errors. */
function readPng(file) {
  let bytes;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    const reason =
      err.code === 'ENOENT'
        ? 'no such file'
        : err.code === 'EISDIR'
          ? 'a folder, not a PNG'
          : err.message;
    throw new Error(`${file}: ${reason}`, { cause: err });
  }
  // The IHDR chunk comes first: its size is known before anything is inflated.
  const signature = '89504e470d0a1a0a';
  if (bytes.length < 24 || bytes.subarray(0, 8).toString('hex') !== signature) {
    throw new Error(`${file}: not a PNG file`);
  }
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  if (!width || !height || width * height > MAX_PIXELS) {
    throw new Error(`${file}: ${width} x ${height} pixels: want 1 to ${MAX_PIXELS / 1e6} million`);
  }
  let png;
  try {
    png = PNG.sync.read(bytes);
  } catch (err) {
    throw new Error(`${file}: not a readable PNG (${err.message})`, { cause: err });
  }
  return {
    rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length),
    width,
    height,
  };
}

/** Each PNG made MNIST-like as the demo page makes its canvas: one float32 [n, 28, 28] batch. */
function readDigitPngs(files) {
  const data = new Float32Array(files.length * SIDE * SIDE);
  files.forEach((file, i) => {
    const { rgba, width, height } = readPng(file);
    data.set(mnistDigit(inkFromRgba(rgba, width, height), width, height), i * SIDE * SIDE);
  });
  return { data, shape: [files.length, SIDE, SIDE], dtype: 'float32' };
}

module.exports = { readPng, readDigitPngs };
