'use strict';
// Reads a tfjs model.json and its weight shards from disk into the
// ModelArtifacts that tf.io.fromMemory takes. One reader for every backend:
// the pure-JS and WASM backends have no file:// loader in Node, and reading
// the files ourselves lets us check them before anything is built:
//   - every file's sha256 against the folder's manifest.json (checkIntegrity);
//   - weight paths stay inside the model folder (no ../, absolute paths or
//     symlinks out of it);
//   - the bytes the weight specs declare are exactly the bytes the shards
//     hold, computed before any tensor is allocated (a truncated shard, or a
//     "memory bomb" shape, is refused).
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const DTYPE_BYTES = { float32: 4, int32: 4, bool: 1, uint8: 1, float16: 2 };
const QUANTIZED_BYTES = { float16: 2, uint8: 1, uint16: 2 }; // convert --quantize
// Sizes bounded before anything is read or allocated; py/tfjs_bridge/importing/reading.py
// checks the same two (tests/test_import.py keeps them equal).
const MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024;
const MAX_WEIGHT_BYTES = 2 * 1024 * 1024 * 1024;

function sha256(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** The manifest's sha256 record for one folder of the model ({relative path: hash}). */
function recordedHashes(manifest, folder) {
  const out = {};
  const conversion = Object.values(manifest.conversions || {}).find((c) => c.output === folder);
  if (conversion) {
    for (const [rel, hash] of Object.entries(conversion.files || {})) out[rel] = hash;
    return out;
  }
  for (const [rel, hash] of Object.entries(manifest.files || {})) {
    if (rel.startsWith(`${folder}/`)) out[rel.slice(folder.length + 1)] = hash;
  }
  return out;
}

/**
 * Refuses a model folder whose files differ from what manifest.json recorded
 * when they were written (corruption or tampering), before anything is parsed.
 */
function checkIntegrity(modelDir, folder, manifest) {
  const expected = recordedHashes(manifest, folder);
  const where = path.join(modelDir, folder);
  if (!Object.keys(expected).length) {
    throw new Error(
      `${where}: manifest.json has no sha256 record for it: re-run \`tfjs-bridge convert\``,
    );
  }
  for (const [rel, hash] of Object.entries(expected)) {
    checkFile(modelDir, path.join(where, rel), hash, rel);
  }
}

/** Throws unless `file` (inside modelDir) exists and has the sha256 `hash`. */
function checkFile(modelDir, file, hash, rel) {
  insideFolder(modelDir, file, `manifest entry '${rel}'`);
  if (!fs.existsSync(file)) throw new Error(`${file}: missing (listed in manifest.json)`);
  if (sha256(file) !== hash) {
    throw new Error(
      `${file}: sha256 differs from manifest.json (corrupted or tampered with): refusing to load`,
    );
  }
}

/** checkIntegrity for one file at the top of the model folder (manifest.files). */
function checkFileIntegrity(modelDir, rel, manifest) {
  const file = path.join(modelDir, rel);
  const hash = (manifest.files || {})[rel];
  if (!hash) throw new Error(`${file}: manifest.json has no sha256 record for it`);
  checkFile(modelDir, file, hash, rel);
  return file;
}

/** Throws unless file, symlinks resolved, is inside folder. */
function insideFolder(folder, file, what) {
  const root = fs.realpathSync(folder);
  const resolved = fs.existsSync(file) ? fs.realpathSync(file) : path.resolve(file);
  const rel = path.relative(root, resolved);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new Error(`${file}: ${what} points outside the model folder ${root}`);
  }
}

function declaredBytes(spec, file) {
  const size = DTYPE_BYTES[spec.dtype];
  const count = (spec.shape || []).reduce((a, b) => a * b, 1);
  if (
    !size ||
    !Number.isSafeInteger(count) ||
    count < 0 ||
    (spec.shape || []).some((d) => !Number.isInteger(d) || d < 0)
  ) {
    throw new Error(
      `${file}: weight '${spec.name}' has an impossible shape [${spec.shape}] or dtype ${spec.dtype}`,
    );
  }
  if (spec.quantization) {
    // convert --quantize: tfjs dequantizes these when it loads the weights.
    const stored = QUANTIZED_BYTES[spec.quantization.dtype];
    if (!stored) {
      throw new Error(
        `${file}: weight '${spec.name}' is quantized to ${spec.quantization.dtype}, which tfjs cannot read`,
      );
    }
    return count * stored;
  }
  return count * size;
}

function readModelArtifacts(modelJsonPath) {
  const file = path.resolve(modelJsonPath);
  let json;
  try {
    const { size } = fs.statSync(file);
    if (size > MAX_MODEL_JSON_BYTES) {
      throw new Error(`${size} bytes, more than a model.json may hold (64 MiB)`);
    }
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    if (err.code === 'ENOENT')
      throw new Error(`${file}: not found: run \`tfjs-bridge convert\` for this model`, {
        cause: err,
      });
    throw new Error(`${file}: not a readable model.json (${err.message})`, { cause: err });
  }
  if (
    !json ||
    typeof json !== 'object' ||
    !json.modelTopology ||
    !Array.isArray(json.weightsManifest)
  ) {
    throw new Error(`${file}: not a tfjs model.json (needs modelTopology and weightsManifest)`);
  }
  const folder = path.dirname(file);
  const weightSpecs = [];
  const shards = [];
  let declared = 0;
  for (const group of json.weightsManifest) {
    if (!group || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new Error(`${file}: a weightsManifest entry lacks paths or weights`);
    }
    for (const shard of group.paths) {
      if (typeof shard !== 'string' || path.isAbsolute(shard)) {
        throw new Error(`${file}: weight path '${shard}' points outside the model folder`);
      }
      const shardPath = path.resolve(folder, shard);
      insideFolder(folder, shardPath, `weight path '${shard}'`);
      shards.push(shardPath);
    }
    for (const spec of group.weights) declared += declaredBytes(spec, file);
    weightSpecs.push(...group.weights);
  }
  if (declared > MAX_WEIGHT_BYTES) throw new Error(`${file}: the weights declare more than 2 GiB`);
  // Sizes first, from the file system: nothing is read or allocated for a lie.
  let held = 0;
  for (const shardPath of shards) {
    try {
      held += fs.statSync(shardPath).size;
    } catch (err) {
      throw new Error(`${shardPath}: weight shard missing (${err.code || err.message})`, {
        cause: err,
      });
    }
  }
  if (held !== declared) {
    throw new Error(
      `${file}: the weights declare ${declared} bytes but the shards hold ${held} (truncated or mismatched)`,
    );
  }
  const weights = Buffer.concat(shards.map((s) => fs.readFileSync(s)));
  return {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    signature: json.signature,
    userDefinedMetadata: json.userDefinedMetadata,
    weightSpecs,
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
  };
}

module.exports = {
  readModelArtifacts,
  checkIntegrity,
  checkFileIntegrity,
  sha256,
  MAX_MODEL_JSON_BYTES,
  MAX_WEIGHT_BYTES,
};
