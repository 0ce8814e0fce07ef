'use strict';
// Train a registry model in Node with tfjs-node, as the seed tutorials do, and
// save it as a tfjs layers model that `tfjs-bridge import` turns into Keras.
//
//   node node/train.js gru --epochs 1 --limit 5000
//   node node/train.js lstm
//   node node/train.js gru_keras --epochs 1   (Keras's reset-after GRU: lib/layers/)
const fs = require('fs');
const path = require('path');
const { main, UsageError, parseCommandLine } = require('./lib/runtime/cli');
const { FORMATS } = require('./lib/runtime/vocabulary');

// Where a tfjs layers model lives in a model folder (vocabulary.json's formats).
const LAYERS = FORMATS.layers.folder;

const USAGE =
  'usage: train.js MODEL [--epochs N] [--limit N] [--out DIR] [--json]  (MODEL: a registry model on MNIST or the seed LSTM data)';

function positiveInt(text, flag) {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`${flag} wants a positive integer, got '${text}'`);
  return n;
}

function parse() {
  const parsed = parseCommandLine(
    {
      allowPositionals: true,
      options: {
        epochs: { type: 'string' },
        limit: { type: 'string' },
        out: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    },
    USAGE,
  );
  if (parsed.positionals.length !== 1) throw new UsageError(USAGE);
  const { values } = parsed;
  return {
    name: parsed.positionals[0],
    epochs: positiveInt(values.epochs, '--epochs'),
    limit: positiveInt(values.limit, '--limit'),
    out: values.out,
    json: values.json,
  };
}

/** Training and test tensors for a spec's data, the same data Python uses. */
function loadData(tf, spec, limit) {
  if (spec.data === 'mnist') {
    const { loadMnist } = require('./lib/io/mnist');
    const split = (name) => {
      const d = loadMnist(name, 0, limit);
      return [
        tf.tensor(d.images, [d.count, 28, 28]),
        tf.oneHot(tf.tensor1d(d.labels, 'int32'), 10).toFloat(),
      ];
    };
    return { train: split('train'), test: split('test') };
  }
  if (spec.data === 'seed_lstm') {
    // Seed 095's xs = [[1], [2]] made 3-D: [samples, timesteps, features].
    const xs = tf.tensor3d([[[1]], [[2]]]);
    const ys = tf.tensor2d([[1], [2]]);
    return { train: [xs, ys], test: [tf.tensor3d([[[3]]]), tf.tensor2d([[3]])] };
  }
  throw new UsageError(
    `node training supports MNIST and seed-LSTM models; ${spec.name} uses '${spec.data}'`,
  );
}

main(async () => {
  const args = parse();
  const { getSpec, buildModel } = require('./lib/layers/registry');
  const spec = getSpec(args.name);
  const { tf, runtimeInfo } = require('./lib/runtime/tfnode');
  if (!spec.node_trainable) throw new UsageError(`${spec.name} cannot be built with tfjs-layers`);
  const epochs = args.epochs || spec.epochs;
  const out = path.resolve(
    args.out || path.join(__dirname, '..', 'shared_models', `${spec.name}_node`),
  );
  const data = loadData(tf, spec, args.limit);
  const model = buildModel(tf, spec);

  const epochSeconds = [];
  let epochStart;
  const callbacks = [
    {
      onEpochBegin: async () => {
        epochStart = Date.now();
      },
      onEpochEnd: async (epoch, logs) => {
        epochSeconds.push((Date.now() - epochStart) / 1000);
        const shown = Object.entries(logs)
          .map(([k, v]) => `${k} ${v.toFixed(4)}`)
          .join(', ');
        process.stderr.write(`train ${spec.name} (node) epoch ${epoch + 1}/${epochs}: ${shown}\n`);
      },
    },
  ];
  if (spec.ema_momentum !== null) {
    callbacks.push(require('./lib/layers/averaging').weightAveraging(tf, model, spec.ema_momentum));
  }
  const started = Date.now();
  const history = await model.fit(data.train[0], data.train[1], {
    epochs,
    batchSize: spec.batch_size,
    shuffle: true,
    verbose: 0,
    callbacks,
  });
  const trainSeconds = (Date.now() - started) / 1000;
  const scores = [].concat(model.evaluate(data.test[0], data.test[1], { batchSize: 256 }));
  const test = {};
  ['loss', ...spec.metrics].forEach((name, i) => {
    test[name] = scores[i].dataSync()[0];
  });
  if (spec.extra && spec.extra.predict_value !== undefined) {
    const probe = tf.fill([1, ...spec.input_shape], spec.extra.predict_value);
    test.prediction = model.predict(probe).dataSync()[0];
  }

  // Written beside the target, then swapped in as a whole: a run killed at
  // any moment leaves the old model or the new one (lib/io/swap.js).
  const { stagingDir, swapIn } = require('./lib/io/swap');
  const staging = stagingDir(out);
  try {
    await model.save(`file://${path.join(staging, LAYERS)}`);
    const manifest = {
      model: spec.name,
      trained_in: 'node',
      spec,
      epochs,
      limit: args.limit || null,
      history: history.history,
      epoch_seconds: epochSeconds,
      train_seconds: trainSeconds,
      test,
      versions: runtimeInfo(),
      created: new Date().toISOString(),
    };
    // sha256 of what was written, as the Python side records its conversions:
    // loaders refuse files that differ (lib/io/modelfiles.js).
    const { sha256 } = require('./lib/io/modelfiles');
    const layersDir = path.join(staging, LAYERS);
    const files = Object.fromEntries(
      fs
        .readdirSync(layersDir)
        .sort()
        .map((f) => [f, sha256(path.join(layersDir, f))]),
    );
    manifest.conversions = {
      layers: { converter: 'tfjs-layers model.save', output: LAYERS, files },
    };
    fs.writeFileSync(path.join(staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    swapIn(staging, out);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }

  const summary = { model: spec.name, out, epochs, train_seconds: trainSeconds, test };
  if (args.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else
    process.stdout.write(
      `${spec.name} trained in node: ${epochs} epochs in ${trainSeconds.toFixed(1)} s; test ${JSON.stringify(test)} -> ${out}\n`,
    );
}, USAGE);
