'use strict';
// Run a converted model in tfjs-node.
//
//   node node/predict.js --model shared_models/gru --input x.npy --output y.npy
//   node node/predict.js --model shared_models/lstm --value 3
//   node node/predict.js --model shared_models/gru --mnist-test 0:100
//
// --format picks how the model is loaded: layers (tf.loadLayersModel),
// graph (tf.loadGraphModel) or saved_model (tf.node.loadSavedModel).
const path = require('path');
const { parseArgs } = require('util');
const { main, UsageError } = require('./lib/cli');

const USAGE = 'usage: predict.js --model DIR [--format layers|graph|saved_model] '
  + '(--input X.npy [--output Y.npy] | --value V | --mnist-test START:END) [--json]';

function parse() {
  let args;
  try {
    args = parseArgs({
      options: {
        model: { type: 'string' },
        format: { type: 'string', default: 'layers' },
        input: { type: 'string' },
        output: { type: 'string' },
        value: { type: 'string' },
        'mnist-test': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    throw new UsageError(`${err.message}\n${USAGE}`);
  }
  const modes = ['input', 'value', 'mnist-test'].filter((k) => args[k] !== undefined);
  if (!args.model || modes.length !== 1) throw new UsageError(USAGE);
  return args;
}

function parseRange(text) {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m || Number(m[1]) >= Number(m[2])) throw new UsageError(`--mnist-test wants START:END with START < END, got '${text}'`);
  return [Number(m[1]), Number(m[2])];
}

main(async () => {
  const args = parse();
  const { tf } = require('./lib/tfnode');
  const { loadModel, readManifest } = require('./lib/models');
  const { readNpy, writeNpy } = require('./lib/npy');
  const manifest = readManifest(args.model);
  const spec = manifest.spec;
  const runner = await loadModel(tf, args.model, args.format);
  const summary = { model: spec.name, format: runner.format, backend: tf.getBackend() };

  let x;
  let labels = null;
  if (args.input !== undefined) {
    const { data, shape } = readNpy(args.input);
    const want = spec.input_shape.join();
    if (shape.slice(1).join() !== want) {
      throw new Error(`${args.input}: shape [${shape}] does not fit the model's input [N,${want}]`);
    }
    x = tf.tensor(data, shape, 'float32');
  } else if (args.value !== undefined) {
    const v = Number(args.value);
    if (!Number.isFinite(v)) throw new UsageError(`--value wants a finite number, got '${args.value}'`);
    x = tf.fill([1, ...spec.input_shape], v);
  } else {
    if (spec.data !== 'mnist') throw new UsageError(`--mnist-test needs an MNIST model; ${spec.name} is not one`);
    const { loadMnist } = require('./lib/mnist');
    const [start, end] = parseRange(args['mnist-test']);
    const test = loadMnist('test', start, end);
    x = tf.tensor(test.images, [test.count, 28, 28]);
    labels = test.labels;
    summary.range = [start, start + test.count];
  }

  const y = await runner.predict(x);
  const values = y.dataSync();
  summary.output_shape = y.shape;
  if (args.output) writeNpy(args.output, Float32Array.from(values), y.shape);
  if (labels) {
    const digits = Array.from(tf.tidy(() => y.argMax(-1)).dataSync());
    summary.digits = digits;
    summary.accuracy = digits.filter((d, i) => d === labels[i]).length / digits.length;
  } else if (args.value !== undefined) {
    summary.prediction = Array.from(values);
  }
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const lines = [`${spec.name} via ${runner.format} on tfjs-node (${summary.backend}): output [${y.shape}]`];
  if (labels) {
    lines.push(`digits: ${summary.digits.slice(0, 40).join(' ')}${summary.digits.length > 40 ? ' ...' : ''}`);
    lines.push(`accuracy on test images ${summary.range[0]}:${summary.range[1]}: ${(100 * summary.accuracy).toFixed(2)} %`);
  } else if (summary.prediction) {
    lines.push(`prediction for ${args.value}: ${summary.prediction.join(', ')}`);
  }
  if (args.output) lines.push(`wrote ${path.resolve(args.output)}`);
  process.stdout.write(`${lines.join('\n')}\n`);
});
