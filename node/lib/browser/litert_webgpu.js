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

/** "SPLIT_V x27 (WHY: e.g. node 26, gru/.../split_2 [1, 0])" per op kind among `ops`. */
function summarise(ops, tensorOf, why) {
  const kinds = new Map();
  for (const op of ops) kinds.set(op.op, [...(kinds.get(op.op) || []), op]);
  return [...kinds]
    .map(([kind, list]) => {
      const t = tensorOf(list[0]);
      const example = `node ${list[0].index}, ${t.name} [${t.shape.join(', ')}]`;
      return `${kind} x${list.length} (${why}: e.g. ${example})`;
    })
    .join('; op ');
}

/**
 * The page's delegate error (`message`) as one line naming the ops: those
 * LiteRT.js lists as not supported by its delegate, the node it names when
 * that is a node of the file, and (when WebGPU found a texture empty, or the
 * delegate's own node failed) the ops with an empty tensor, which WebGPU
 * cannot hold as a texture; failing all three, every kind of op the delegate
 * took. Null when `message` is no such failure.
 */
function explainDelegateFailure(message, files) {
  if (!/LiteRT\.js's webgpu delegate failed/.test(message)) return null;
  const batch = (AT_BATCH.exec(message) || [])[1];
  const file = files[batch] || Object.values(files)[0];
  const operators = tfliteOperators(new Uint8Array(fs.readFileSync(file)), TFLITE_BUILTIN_OPS);
  const phase = (/delegate failed while ([^:]+)/.exec(message) || [])[1] || 'running the model';
  const causes = [];
  const refused = /not supported by GPU delegate:(.*)/.exec(message);
  for (const [, op, why] of refused
    ? refused[1].matchAll(/(?:^|; )([A-Z][A-Z0-9_]+): ([^;]+)/g)
    : []) {
    causes.push(`${op} (${why.trim().replace(/\.$/, '')}; LiteRT.js would run it on WASM)`);
  }
  const node = FAILED_NODE.exec(message);
  const n = node ? Number(node[1]) : null;
  if (n !== null && n < operators.length) {
    const out = operators[n].outputs[0] || { name: '?' };
    causes.push(`${operators[n].op} (node ${n}, ${out.name}, failed to invoke)`);
  }
  const empty = operators.filter((op) =>
    [...op.inputs, ...op.outputs].some((t) => t.shape.includes(0)),
  );
  const emptyTensor = (op) => [...op.outputs, ...op.inputs].find((t) => t.shape.includes(0));
  if (empty.length && (/is empty/.test(message) || n !== null)) {
    causes.push(
      summarise(empty, emptyTensor, 'an empty tensor, which WebGPU cannot hold as a texture'),
    );
  }
  const delegateNode =
    n !== null && n >= operators.length
      ? `; node ${n} (${node[2]}, the delegate's kernel for all ${operators.length} ops) failed to invoke`
      : '';
  const webgpu = /WebGPU: ([^;]+)/.exec(message);
  const context = `${phase}${delegateNode}${webgpu ? `; WebGPU: ${webgpu[1].trim().slice(0, 160)}` : ''}`;
  if (!causes.length) {
    // Nothing named: every op the delegate took is a suspect, named by kind.
    const kinds = new Map();
    operators.forEach((op) => kinds.set(op.op, (kinds.get(op.op) || 0) + 1));
    const ops = [...kinds].map(([kind, count]) => `${kind} x${count}`).join(', ');
    return (
      `tfjs-bridge cannot run this model on LiteRT.js's WebGPU delegate, which named no op ` +
      `(${context}; the ops it took: ${ops}); its outputs are not answers`
    );
  }
  return (
    `tfjs-bridge cannot run op ${causes.join('; op ')} on LiteRT.js's WebGPU delegate ` +
    `(${context}); its outputs are not answers`
  );
}

module.exports = { staticTfliteFiles, explainDelegateFailure };
