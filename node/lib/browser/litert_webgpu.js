'use strict';
// The driver's side of LiteRT.js on WebGPU ('chromium-litert-webgpu'): which
// files the page gets, and what a failed invoke is said to be.
//
// LiteRT.js 2.5.3's WebGPU delegate takes static-sized tensors only, so the
// page runs the .tflite files converted at fixed batches (`convert --format
// tflite --static-batch 1,32`, recorded in the manifest's tflite conversion).
// When the delegate fails to invoke, LiteRT.js resolves run() anyway (with
// zeros, on SwiftShader) and names only a node number, which for a fully
// delegated model is the delegate's own node; the page turns the console's
// line into an error (litert_page.js), and this names the ops behind it
// from the file itself, in one line that verify reads as unsupported.
const fs = require('fs');
const path = require('path');
const { readManifest } = require('../io/manifest');
const { tfliteOperators } = require('../io/tflite_graph');
const { FORMATS, TFLITE_BUILTIN_OPS } = require('../runtime/vocabulary');

/** {batch: file path} of the model's static-batch .tflite files, or an error saying how to make them. */
function staticTfliteFiles(modelDir) {
  const done = (readManifest(modelDir).conversions || {}).tflite || {};
  const statics = done.static_batches;
  if (!statics || !Object.keys(statics).length) {
    const name = path.basename(path.resolve(modelDir));
    throw new Error(
      `${name}: no .tflite converted at a static batch, which LiteRT.js's WebGPU delegate ` +
        `needs: run \`tfjs-bridge convert ${name} --format tflite --static-batch 1,32\``,
    );
  }
  const folder = path.resolve(modelDir, FORMATS.tflite.folder);
  return Object.fromEntries(
    Object.entries(statics).map(([batch, file]) => [batch, path.join(folder, file)]),
  );
}

const FAILED_NODE = /Node number (\d+) \((\w+)\) failed to invoke/;
const AT_BATCH = /at a batch of (\d+)/;

/** "SPLIT_V x27 (e.g. node 26, gru/.../split_2 [1, 0])" per op kind among `ops`. */
function summarise(ops, tensorOf) {
  const kinds = new Map();
  for (const op of ops) kinds.set(op.op, [...(kinds.get(op.op) || []), op]);
  return [...kinds]
    .map(([kind, list]) => {
      const t = tensorOf(list[0]);
      return `${kind} x${list.length} (e.g. node ${list[0].index}, ${t.name} [${t.shape.join(', ')}])`;
    })
    .join(', ');
}

/**
 * The page's delegate error (`message`) as one line naming the op: the
 * failing node's own op when LiteRT.js names a node of the file, else (the
 * delegate's node, which holds every op) the ops with an empty tensor, which
 * WebGPU cannot hold as a texture. Null when `message` is no such failure.
 */
function explainDelegateFailure(message, files) {
  if (!/LiteRT\.js's webgpu delegate failed/.test(message)) return null;
  const batch = (AT_BATCH.exec(message) || [])[1];
  const file = files[batch] || Object.values(files)[0];
  const operators = tfliteOperators(new Uint8Array(fs.readFileSync(file)), TFLITE_BUILTIN_OPS);
  const node = FAILED_NODE.exec(message);
  const said = message.replace(/^.*?delegate failed while /, '').slice(0, 300);
  const n = node ? Number(node[1]) : null;
  if (n !== null && n < operators.length) {
    const op = operators[n];
    const out = op.outputs[0] || { name: '?', shape: [] };
    return (
      `tfjs-bridge cannot run op ${op.op} (node ${n}, ${out.name}) on LiteRT.js's WebGPU ` +
      `delegate: it failed while ${said}; its outputs are not answers`
    );
  }
  const empty = operators.filter((op) =>
    [...op.inputs, ...op.outputs].some((t) => t.shape.includes(0)),
  );
  const emptyTensor = (op) => [...op.outputs, ...op.inputs].find((t) => t.shape.includes(0));
  const where = node
    ? `node ${n} (${node[2]}, the delegate's kernel for all ${operators.length} ops)`
    : 'the delegated model';
  if (empty.length) {
    return (
      `tfjs-bridge cannot run op ${summarise(empty, emptyTensor)} on LiteRT.js's WebGPU ` +
      `delegate: an empty tensor, which WebGPU cannot hold as a texture; ${where} failed ` +
      `while ${said}; its outputs (zeros) are not answers`
    );
  }
  // LiteRT.js named no node of the file, and no tensor is empty: every op
  // the delegate took is a suspect, named by kind.
  const kinds = new Map();
  operators.forEach((op) => kinds.set(op.op, (kinds.get(op.op) || 0) + 1));
  const ops = [...kinds].map(([kind, count]) => `${kind} x${count}`).join(', ');
  return (
    `tfjs-bridge cannot run this model on LiteRT.js's WebGPU delegate: ${where} failed ` +
    `while ${said}, naming no op; the ops it took: ${ops}; its outputs are not answers`
  );
}

module.exports = { staticTfliteFiles, explainDelegateFailure };
