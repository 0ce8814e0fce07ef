'use strict';
// Run a converted model in tfjs-node.
//
//   node node/predict.js --model shared_models/gru --input x.npy --output y.npy
//   node node/predict.js --model shared_models/lstm --value 3
//   node node/predict.js --model shared_models/gru --mnist-test 0:100
//
// --format picks how the model is loaded: layers (tf.loadLayersModel),
// graph (tf.loadGraphModel), saved_model or saved_model_xla
// (tf.node.loadSavedModel), onnx (onnxruntime-node, `make onnx`). Without it,
// the fastest path that `tfjs-bridge verify` passed for this folder
// (lib/runtime/choose.js), and it says so.
const path = require('path');
const { parseArgs } = require('util');
const { main, UsageError } = require('./lib/runtime/cli');

const USAGE =
  'usage: predict.js --model DIR [--format layers|graph|saved_model|saved_model_xla|onnx] ' +
  '(--input X.npy [--output Y.npy] [--allow-nonfinite] | --value V | --mnist-test START:END) [--json]';

function parse() {
  let args;
  try {
    args = parseArgs({
      options: {
        model: { type: 'string' },
        format: { type: 'string' },
        input: { type: 'string' },
        output: { type: 'string' },
        value: { type: 'string' },
        'mnist-test': { type: 'string' },
        'allow-nonfinite': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    throw new UsageError(`${err.message} (${USAGE})`);
  }
  const modes = ['input', 'value', 'mnist-test'].filter((k) => args[k] !== undefined);
  if (!args.model || modes.length !== 1) throw new UsageError(USAGE);
  return args;
}

/** The model's input contract, as py/tfjs_bridge/inputs.py checks it. */
function checkInput({ data, shape, dtype }, file, inputShape, allowNonfinite) {
  const want = inputShape.map((d) => (d === null ? '*' : d)).join(', ');
  if (dtype !== 'float32') throw new Error(`${file}: dtype ${dtype}, the model takes float32`);
  const fits =
    shape.length === inputShape.length + 1 &&
    inputShape.every((d, i) => d === null || d === shape[i + 1]);
  if (!fits)
    throw new Error(
      `${file}: shape [${shape.join(', ')}] does not fit the model's input [N, ${want}]`,
    );
  if (shape[0] === 0) throw new Error(`${file}: empty (0 samples)`);
  if (!allowNonfinite) {
    const first = data.findIndex((v) => !Number.isFinite(v));
    if (first >= 0) {
      const count = data.reduce((n, v) => n + (Number.isFinite(v) ? 0 : 1), 0);
      throw new Error(
        `${file}: ${count} NaN/Inf values (first at flat index ${first}); pass --allow-nonfinite to run them anyway`,
      );
    }
  }
  return { data, shape };
}

function parseRange(text) {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m || Number(m[1]) >= Number(m[2]))
    throw new UsageError(`--mnist-test wants START:END with START < END, got '${text}'`);
  return [Number(m[1]), Number(m[2])];
}

main(async () => {
  const args = parse();
  const { tf } = require('./lib/runtime/tfnode');
  const { loadModel, bind } = require('./lib/runtime/models');
  const { readManifest } = require('./lib/io/manifest');
  const { readNpy, writeNpy } = require('./lib/io/npy');
  const manifest = readManifest(args.model);
  const spec = manifest.spec;
  let x;
  let labels = null;
  let range = null;
  if (args.input !== undefined) {
    const { data, shape } = checkInput(
      readNpy(args.input),
      args.input,
      spec.input_shape,
      args['allow-nonfinite'],
    );
    x = tf.tensor(data, shape, 'float32');
  } else if (args.value !== undefined) {
    const v = Number(args.value);
    if (!Number.isFinite(v))
      throw new UsageError(`--value wants a finite number, got '${args.value}'`);
    x = tf.fill([1, ...spec.input_shape], v);
  } else {
    if (spec.data !== 'mnist')
      throw new UsageError(`--mnist-test needs an MNIST model; ${spec.name} is not one`);
    const { loadMnist } = require('./lib/io/mnist');
    const [start, end] = parseRange(args['mnist-test']);
    const test = loadMnist('test', start, end);
    x = tf.tensor(test.images, [test.count, 28, 28]);
    labels = test.labels;
    range = [start, start + test.count];
  }

  // The path is chosen once the batch size is known: for a one-shot run the
  // fastest is the one with the least load-plus-compute time (lib/runtime/choose.js).
  const { chooseFormat } = require('./lib/runtime/choose');
  const chosen = args.format
    ? { format: args.format, why: 'asked for' }
    : chooseFormat(args.model, { batch: x.shape[0], oneShot: true });
  // The onnx format runs on onnxruntime-node; inputs are still made with tfjs.
  const runtime =
    chosen.format === 'onnx' ? { ort: require('./lib/runtime/backends').loadOnnxRuntime() } : tf;
  const runner = await loadModel(runtime, args.model, chosen.format);
  const summary = {
    model: spec.name,
    format: runner.format,
    why: chosen.why,
    backend: runner.format === 'onnx' ? 'onnxruntime' : tf.getBackend(),
  };
  if (labels) summary.range = range;

  const bound = bind(tf, runner, { dtype: 'float32', shape: x.shape, data: x.dataSync() });
  const [out] = await bound.call();
  bound.release();
  const y = tf.tensor(out.data, out.shape, out.dtype);
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
  const engine = runner.format === 'onnx' ? 'onnxruntime-node' : 'tfjs-node';
  const lines = [
    `${spec.name} via ${runner.format} on ${engine}: output [${y.shape}]`,
    `path: ${chosen.why}`,
  ];
  if (labels) {
    lines.push(
      `digits: ${summary.digits.slice(0, 40).join(' ')}${summary.digits.length > 40 ? ' ...' : ''}`,
    );
    lines.push(
      `accuracy on test images ${summary.range[0]}:${summary.range[1]}: ${(100 * summary.accuracy).toFixed(2)} %`,
    );
  } else if (summary.prediction) {
    lines.push(`prediction for ${args.value}: ${summary.prediction.join(', ')}`);
  }
  if (args.output) lines.push(`wrote ${path.resolve(args.output)}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}, USAGE);
