'use strict';
// .npz archives (numpy's savez / savez_compressed: a zip of .npy files, one
// per named array), for requests and answers that carry several arrays. The
// zip container is fflate's; each member is checked as any .npy is (npy.js).
// Sizes are checked from the zip's directory before anything is inflated, so
// a small archive that would inflate to gigabytes is refused unread.
const { unzipSync, zipSync } = require('fflate');
const { decodeNpy, encodeNpy } = require('./npy');

/** {name: {data, shape, dtype}} from .npz bytes; at most `maxBytes` once inflated. */
function decodeNpz(bytes, where, maxBytes) {
  let total = 0;
  let files;
  try {
    files = unzipSync(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), {
      filter: (file) => {
        total += file.originalSize;
        if (total > maxBytes) throw new Error(`inflates to over ${maxBytes} bytes`);
        return true;
      },
    });
  } catch (err) {
    throw new Error(`${where}: not a readable .npz archive (${err.message})`, { cause: err });
  }
  const arrays = {};
  for (const [file, member] of Object.entries(files)) {
    if (!file.endsWith('.npy')) throw new Error(`${where}: ${file} is not a .npy member`);
    arrays[file.slice(0, -4)] = decodeNpy(member, `${where}: ${file}`);
  }
  if (!Object.keys(arrays).length) throw new Error(`${where}: the .npz archive holds no arrays`);
  return arrays;
}

/** .npz bytes (uncompressed, as np.savez writes) holding {name: {data, shape}}. */
function encodeNpz(arrays) {
  const members = Object.fromEntries(
    Object.entries(arrays).map(([name, { data, shape }]) => [
      `${name}.npy`,
      new Uint8Array(encodeNpy(data, shape)),
    ]),
  );
  return Buffer.from(zipSync(members, { level: 0 }));
}

module.exports = { decodeNpz, encodeNpz };
