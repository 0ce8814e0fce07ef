'use strict';
// Run a converted model in tfjs-node.
//
//   node node/predict.js --model shared_models/gru --input x.npy --output y.npy
//   node node/predict.js --model shared_models/lstm --value 3
//   node node/predict.js --model shared_models/gru --mnist-test 0:100
//   node node/predict.js --model shared_models/gru --image digit.png [--image 2.png ...]
//   node node/predict.js --model shared_models/spam --text "Subject line\nBody ..."
//   node node/predict.js --model shared_models/spam --text-file mail.txt
//   node node/predict.js --model shared_models/gru --stream < steps.jsonl
//
// --text and --text-file (a file holds one mail, read as UTF-8) are for text
// models, whose folder holds the tokenizer.json Python fitted (checked
// against its sha256 in manifest.json, like every model file): the text is
// encoded to token ids as in Python (lib/io/tokenizer.js), and the model's
// probability printed. The model reads the text as given: for the spam model,
// a mail's subject, a newline, and its body (folder/tokenizer.py's mail_text), no headers.
//
// --image (MNIST models) reads a PNG (a drawing, a photo of a digit on
// paper) and makes it MNIST-like as the demo page does (lib/io/digit_image.js:
// the ink's box scaled into 20 x 20, strokes MNIST-wide, centred by mass),
// then prints the digit and its probability for each image.
//
// --format picks how the model is loaded: layers (tf.loadLayersModel),
// graph (tf.loadGraphModel), saved_model or saved_model_xla
// (tf.node.loadSavedModel), onnx (onnxruntime-node, `make onnx`). Without it,
// the fastest path that `tfjs-bridge verify` passed for this folder
// (lib/runtime/choose.js), and it says so.
//
// --stream reads one step per line from stdin (a JSON array of the step's
// features; for token ids, one id) and writes one JSON line per step, that
// step's output, keeping the model's recurrent state between lines; a line
// {"reset": true} starts a new sequence. It runs the layers model on
// tfjs-node, step by step (lib/layers/stream.js; docs/streaming.md).
const path = require('path');
const { main, UsageError, parseCommandLine } = require('./lib/runtime/cli');

const TOKENIZER_FILE = 'tokenizer.json'; // folder/tokenizer.py's TOKENIZER_FILE

const USAGE =
  'usage: predict.js --model DIR [--format layers|graph|saved_model|saved_model_xla|onnx] ' +
  '(--input X.npy | --input NAME=X.npy ... [--output Y.npy] [--allow-nonfinite] ' +
  '| --value V | --mnist-test START:END | --image FILE.png ... | --text TEXT | --text-file FILE ' +
  '| --stream) [--json]';
// --help says what --stream reads and writes too
const HELP =
  `${USAGE}\n--stream: stdin one step per line (a JSON array of its features, or one ` +
  'token id; {"reset": true} starts a new sequence; {"info": true} writes which ops step it), ' +
  'stdout one JSON output line per step';

function parse() {
  const args = parseCommandLine(
    {
      options: {
        model: { type: 'string' },
        format: { type: 'string' },
        input: { type: 'string', multiple: true },
        output: { type: 'string' },
        value: { type: 'string' },
        'mnist-test': { type: 'string' },
        image: { type: 'string', multiple: true },
        text: { type: 'string' },
        'text-file': { type: 'string' },
        'allow-nonfinite': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        stream: { type: 'boolean', default: false },
      },
    },
    USAGE,
  ).values;
  const modes = ['input', 'value', 'mnist-test', 'image', 'text', 'text-file'].filter(
    (k) => args[k] !== undefined,
  );
  if (args.stream) modes.push('stream');
  if (!args.model || modes.length !== 1) throw new UsageError(USAGE);
  if (args.stream && args.format && args.format !== 'layers') {
    throw new UsageError(`--stream runs the layers model, not --format ${args.format}`);
  }
  return args;
}

/**
 * The --input arrays, one per model input in the signature's order, each
 * checked (lib/io/inputs.js). One input: --input X.npy; several: --input
 * NAME=X.npy for each.
 */
function readInputs(given, signature, allowNonfinite, readNpy) {
  const { checkInput } = require('./lib/io/inputs');
  const names = signature.inputs.map((i) => i.name);
  const files = new Map();
  for (const text of given) {
    const eq = text.indexOf('=');
    const named = eq > 0 && names.includes(text.slice(0, eq));
    const [name, file] = named ? [text.slice(0, eq), text.slice(eq + 1)] : [null, text];
    if (!name && names.length > 1) {
      throw new UsageError(
        `the model has ${names.length} inputs: name each, --input NAME=FILE.npy (${names.join(', ')})`,
      );
    }
    const key = name || names[0];
    if (files.has(key)) throw new UsageError(`--input ${key} given twice`);
    files.set(key, file);
  }
  const missing = names.filter((n) => !files.has(n));
  if (missing.length) throw new UsageError(`no --input for ${missing.join(', ')}`);
  return signature.inputs.map((spec) => {
    const file = files.get(spec.name);
    return checkInput(readNpy(file), file, spec, allowNonfinite, names.length === 1);
  });
}

/**
 * The tokenizer.json of a text model's folder, refused unless its sha256 is
 * the one manifest.json recorded and it makes the ids the model takes.
 */
function modelTokenizer(modelDir, manifest, signature) {
  if (!manifest.tokenizer) {
    throw new UsageError(
      `--text needs a text model (one trained with a tokenizer); ${manifest.spec.name} is not one`,
    );
  }
  const { checkFileIntegrity } = require('./lib/io/modelfiles');
  const { loadTokenizer } = require('./lib/io/tokenizer');
  const file = checkFileIntegrity(modelDir, TOKENIZER_FILE, manifest);
  const tokenizer = loadTokenizer(file);
  const [input] = signature.inputs;
  const fits =
    signature.inputs.length === 1 &&
    input.kind === 'tokens' &&
    input.shape.length === 1 &&
    input.shape[0] === tokenizer.maxLen &&
    tokenizer.vocabSize <= input.high;
  if (!fits) {
    throw new Error(
      `${file}: makes ${tokenizer.maxLen} ids below ${tokenizer.vocabSize}, ` +
        `but the model takes ${JSON.stringify(signature.inputs.map((i) => [i.kind, i.shape, i.high]))}`,
    );
  }
  return tokenizer;
}

/** One mail: the whole file, as UTF-8. */
function readTextFile(file) {
  const fs = require('fs');
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const reason =
      err.code === 'ENOENT'
        ? 'no such file'
        : err.code === 'EISDIR'
          ? 'a folder, not a text file'
          : err.message;
    throw new Error(`${file}: ${reason}`, { cause: err });
  }
}

function parseRange(text) {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m || Number(m[1]) >= Number(m[2]))
    throw new UsageError(`--mnist-test wants START:END with START < END, got '${text}'`);
  return [Number(m[1]), Number(m[2])];
}

/** --stream: stdin's steps through one stream of the layers model (lib/runtime/streaming.js). */
async function stream(args, tf, signature) {
  const { loadModel } = require('./lib/runtime/models');
  const { streamLines } = require('./lib/runtime/streaming');
  if (signature.inputs.length !== 1) {
    throw new UsageError(
      `--stream takes a model with one input; this one has ${signature.inputs.length}`,
    );
  }
  const runner = await loadModel(tf, args.model, 'layers');
  const lines = require('readline').createInterface({ input: process.stdin, crlfDelay: Infinity });
  await streamLines(tf, runner.model, signature.inputs[0], lines, (text) =>
    process.stdout.write(text),
  );
}

main(async () => {
  const args = parse();
  const { tf } = require('./lib/runtime/tfnode');
  const { loadModel, bind } = require('./lib/runtime/models');
  const { readManifest } = require('./lib/io/manifest');
  const { readNpy, writeNpy } = require('./lib/io/npy');
  const manifest = readManifest(args.model);
  const spec = manifest.spec;
  const signature = require('./lib/io/inputs').signatureOf(manifest);
  if (args.stream) return stream(args, tf, signature);
  const oneFloat = signature.inputs.length === 1 && signature.inputs[0].dtype === 'float32';
  let inputs;
  let labels = null;
  let range = null;
  let text = null;
  if (args.input !== undefined) {
    inputs = readInputs(args.input, signature, args['allow-nonfinite'], readNpy);
  } else if (args.value !== undefined) {
    const v = Number(args.value);
    if (!Number.isFinite(v))
      throw new UsageError(`--value wants a finite number, got '${args.value}'`);
    if (!oneFloat) throw new UsageError('--value needs a model with one float input');
    const shape = [1, ...signature.inputs[0].shape];
    inputs = [
      { data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v), shape, dtype: 'float32' },
    ];
  } else if (args.text !== undefined || args['text-file'] !== undefined) {
    const tokenizer = modelTokenizer(args.model, manifest, signature);
    const mail = args.text !== undefined ? args.text : readTextFile(args['text-file']);
    const ids = tokenizer.encode(mail);
    const length = ids.filter((id) => id !== 0).length; // padding is 0, after the ids
    text = {
      length,
      max_len: tokenizer.maxLen,
      tokens: tokenizer.tokens(mail).length,
      oov: ids.filter((id) => id === 1).length,
    };
    inputs = [{ data: ids, shape: [1, ids.length], dtype: 'int32' }];
  } else if (args.image !== undefined) {
    if (spec.data !== 'mnist')
      throw new UsageError(`--image needs an MNIST model; ${spec.name} is not one`);
    inputs = [require('./lib/io/png').readDigitPngs(args.image)];
  } else {
    if (spec.data !== 'mnist')
      throw new UsageError(`--mnist-test needs an MNIST model; ${spec.name} is not one`);
    const { loadMnist } = require('./lib/io/mnist');
    const [start, end] = parseRange(args['mnist-test']);
    const test = loadMnist('test', start, end);
    inputs = [{ data: test.images, shape: [test.count, 28, 28], dtype: 'float32' }];
    labels = test.labels;
    range = [start, start + test.count];
  }
  const batch = inputs[0].shape[0];

  // The path is chosen once the batch size is known: for a one-shot run the
  // fastest is the one with the least load-plus-compute time (lib/runtime/choose.js).
  const { chooseFormat } = require('./lib/runtime/choose');
  const chosen = args.format
    ? { format: args.format, why: 'asked for' }
    : chooseFormat(args.model, { batch, oneShot: true });
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

  const names = signature.inputs.map((i) => i.name);
  const bound = bind(tf, runner, inputs, names);
  const outputs = await bound.call();
  bound.release();
  const [first] = outputs;
  const y = tf.tensor(first.data, first.shape, first.dtype);
  const values = y.dataSync();
  summary.output_shape = y.shape;
  summary.outputs = runner.outputs;
  if (args.output) {
    // several outputs: Y_NAME.npy for each, as `tfjs-bridge predict` writes them
    const { dir, name, ext } = path.parse(args.output);
    outputs.forEach((out, i) => {
      const file =
        outputs.length === 1 ? args.output : path.join(dir, `${name}_${runner.outputs[i]}${ext}`);
      writeNpy(file, out.data, out.shape);
      (summary.written = summary.written || []).push(path.resolve(file));
    });
  }
  if (labels) {
    const digits = Array.from(tf.tidy(() => y.argMax(-1)).dataSync());
    summary.digits = digits;
    summary.accuracy = digits.filter((d, i) => d === labels[i]).length / digits.length;
  } else if (args.image) {
    const classes = y.shape[1];
    summary.images = args.image.map((file, i) => {
      const probabilities = Array.from(values.subarray(i * classes, (i + 1) * classes));
      const digit = probabilities.indexOf(Math.max(...probabilities));
      return { file, digit, probability: probabilities[digit], probabilities };
    });
  } else if (args.value !== undefined) {
    summary.prediction = Array.from(values);
  } else if (text) {
    Object.assign(summary, text);
    if (values.length === 1) summary.probability = values[0];
    else summary.prediction = Array.from(values);
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
  } else if (summary.images) {
    for (const { file, digit, probability } of summary.images)
      lines.push(`${file}: ${digit} (${(100 * probability).toFixed(1)} %)`);
  } else if (text) {
    const truncated = text.tokens > text.length ? `, of the text's ${text.tokens}` : '';
    lines.push(`${text.length} token ids${truncated} (max ${text.max_len}; ${text.oov} unknown)`);
    lines.push(
      summary.probability !== undefined
        ? `${spec.name} probability: ${summary.probability.toFixed(6)}`
        : `prediction: ${summary.prediction.join(', ')}`,
    );
  } else if (summary.prediction) {
    lines.push(`prediction for ${args.value}: ${summary.prediction.join(', ')}`);
  }
  (summary.written || []).forEach((file) => lines.push(`wrote ${file}`));
  process.stdout.write(`${lines.join('\n')}\n`);
}, HELP);
