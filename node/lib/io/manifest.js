'use strict';
// A model folder's manifest.json (written by the Python side, or by
// node/train.js): what the folder holds, and the sha256 of every file.
const fs = require('fs');
const path = require('path');

const MANIFEST = 'manifest.json';

function readManifest(modelDir) {
  const file = path.join(modelDir, MANIFEST);
  if (!fs.existsSync(file))
    throw new Error(`${file}: no manifest: train and convert the model first`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${err.message})`, { cause: err });
  }
}

module.exports = { MANIFEST, readManifest };
