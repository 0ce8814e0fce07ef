'use strict';
// Builds the models of TensorFlow.js's e2e suite `create_save_predict` (the
// same architectures, our own code) with tf.layers in Node and saves each as
// tfjs's model.save writes it: OUT/NAME/model.json + weights.bin, ready for
// `tfjs-bridge import`. Their weights are redrawn with a seed (biases,
// batch-norm statistics and embeddings are zero or one at initialisation,
// and a mapping that got them wrong would still pass on such values).
const fs = require('fs');
const path = require('path');
const { parseArgs } = require('util');
const { main, UsageError } = require('../lib/runtime/cli');

const USAGE = `usage: create-tfjs-models.js OUT_DIR [--model NAME ...] [--seed S]
       [--browser-names] [--shards N]

Builds the models of tfjs's e2e create_save_predict suite with tf.layers and
saves each in OUT_DIR/NAME/ as model.save writes it (model.json + weights.bin).
  --model NAME     these models (repeatable; default: the e2e suite's)
  --seed S         the seed of the redrawn weights (default 1)
  --browser-names  name the files as tf.io.browserDownloads does
                   (model.json + ./model.weights.bin)
  --shards N       split the weights into N shard files (as the converter does)
models: mlp, cnn, depthwise_cnn, simple_rnn, gru, bidirectional_lstm,
        time_distributed_lstm, one_dimensional, functional_merge
more (tfjs-bridge's own, for its mapping tests): bidirectional_gru_sum,
        bidirectional_gru_mul, bidirectional_gru_ave, masked_lstm, hard_sigmoid_dense`;

/** The builders, one per model of the e2e suite, in its order. */
function builders(tf) {
  const tokens = (layers) => {
    const model = tf.sequential();
    model.add(tf.layers.embedding({ inputDim: 100, outputDim: 20, inputShape: [10] }));
    layers.forEach((layer) => model.add(layer));
    return model;
  };
  return {
    mlp: () => {
      // activations inside layers and as layers of their own
      const model = tf.sequential();
      model.add(tf.layers.dense({ units: 100, inputShape: [200], activation: 'relu' }));
      model.add(tf.layers.dense({ units: 50, activation: 'elu' }));
      model.add(tf.layers.dense({ units: 24 }));
      model.add(tf.layers.activation({ activation: 'elu' }));
      model.add(tf.layers.dense({ units: 8, activation: 'softmax' }));
      return model;
    },
    cnn: () => {
      const model = tf.sequential();
      model.add(
        tf.layers.conv2d({
          filters: 32,
          kernelSize: [3, 3],
          strides: [2, 2],
          inputShape: [40, 40, 3],
          padding: 'valid',
        }),
      );
      model.add(tf.layers.batchNormalization({}));
      model.add(tf.layers.activation({ activation: 'relu' }));
      model.add(tf.layers.dropout({ rate: 0.5 }));
      model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
      model.add(tf.layers.separableConv2d({ filters: 32, kernelSize: [4, 4], strides: [3, 3] }));
      model.add(tf.layers.batchNormalization({}));
      model.add(tf.layers.activation({ activation: 'relu' }));
      model.add(tf.layers.dropout({ rate: 0.5 }));
      model.add(tf.layers.averagePooling2d({ poolSize: [2, 2] }));
      model.add(tf.layers.flatten({}));
      model.add(tf.layers.dense({ units: 100, activation: 'softmax' }));
      return model;
    },
    depthwise_cnn: () => {
      const model = tf.sequential();
      model.add(
        tf.layers.depthwiseConv2d({
          depthMultiplier: 2,
          kernelSize: [3, 3],
          strides: [2, 2],
          inputShape: [40, 40, 3],
          padding: 'valid',
        }),
      );
      model.add(tf.layers.batchNormalization({}));
      model.add(tf.layers.activation({ activation: 'relu' }));
      model.add(tf.layers.dropout({ rate: 0.5 }));
      model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
      model.add(tf.layers.flatten({}));
      model.add(tf.layers.dense({ units: 100, activation: 'softmax' }));
      return model;
    },
    simple_rnn: () => tokens([tf.layers.simpleRNN({ units: 4 })]),
    gru: () => tokens([tf.layers.gru({ units: 4, goBackwards: true })]),
    bidirectional_lstm: () =>
      tokens([
        tf.layers.bidirectional({
          layer: tf.layers.lstm({ units: 4, goBackwards: true }),
          mergeMode: 'concat',
        }),
      ]),
    time_distributed_lstm: () =>
      tokens([
        tf.layers.lstm({ units: 4, returnSequences: true }),
        tf.layers.timeDistributed({
          layer: tf.layers.dense({ units: 2, useBias: false, activation: 'softmax' }),
        }),
      ]),
    one_dimensional: () => {
      const model = tf.sequential();
      model.add(
        tf.layers.conv1d({ filters: 16, kernelSize: [4], inputShape: [80, 1], activation: 'relu' }),
      );
      model.add(tf.layers.maxPooling1d({ poolSize: 3 }));
      model.add(tf.layers.conv1d({ filters: 8, kernelSize: [3], activation: 'relu' }));
      model.add(tf.layers.averagePooling1d({ poolSize: 5 }));
      model.add(tf.layers.flatten());
      return model;
    },
    functional_merge: () => {
      const input1 = tf.input({ shape: [2, 5] });
      const input2 = tf.input({ shape: [4, 5] });
      const input3 = tf.input({ shape: [30] });
      const reshaped1 = tf.layers.reshape({ targetShape: [10] }).apply(input1);
      const reshaped2 = tf.layers.reshape({ targetShape: [20] }).apply(input2);
      const dense1 = tf.layers.dense({ units: 5 }).apply(reshaped1);
      const dense2 = tf.layers.dense({ units: 5 }).apply(reshaped2);
      const dense3 = tf.layers.dense({ units: 5 }).apply(input3);
      const avg = tf.layers.average().apply([dense1, dense2]);
      const concat = tf.layers.concatenate({ axis: -1 }).apply([avg, dense3]);
      const output = tf.layers.dense({ units: 1 }).apply(concat);
      return tf.model({ inputs: [input1, input2, input3], outputs: output });
    },
  };
}

/** Models beyond the e2e suite: each exercises one more tfjs default or name. */
function extraBuilders(tf) {
  const bidirectional = (mergeMode) => () => {
    const model = tf.sequential();
    model.add(tf.layers.embedding({ inputDim: 100, outputDim: 20, inputShape: [10] }));
    const gru = tf.layers.gru({ units: 4, returnSequences: true });
    model.add(tf.layers.bidirectional({ layer: gru, mergeMode }));
    return model;
  };
  return {
    bidirectional_gru_sum: bidirectional('sum'),
    bidirectional_gru_mul: bidirectional('mul'),
    bidirectional_gru_ave: bidirectional('ave'),
    masked_lstm: () => {
      // token 0 is padding: the LSTM must skip those steps in Keras too
      const model = tf.sequential();
      model.add(
        tf.layers.embedding({ inputDim: 50, outputDim: 8, inputShape: [12], maskZero: true }),
      );
      model.add(tf.layers.lstm({ units: 6 }));
      model.add(tf.layers.dense({ units: 3, activation: 'softmax' }));
      return model;
    },
    hard_sigmoid_dense: () => {
      const model = tf.sequential();
      model.add(tf.layers.dense({ units: 8, inputShape: [6], activation: 'hardSigmoid' }));
      model.add(tf.layers.dense({ units: 3, activation: 'hardSigmoid' }));
      return model;
    },
  };
}

/**
 * Every weight redrawn from `seed`: kernels keep their initialiser's scale,
 * anything initialised to a constant (biases, batch-norm statistics) and the
 * small embeddings get values a wrong mapping shows on.
 */
function redraw(tf, model, seed) {
  let n = seed;
  for (const weight of model.weights) {
    const name = weight.originalName;
    const { shape } = weight;
    n += 1;
    const uniform = (lo, hi) => tf.randomUniform(shape, lo, hi, 'float32', n);
    let value;
    if (/moving_variance$/.test(name)) value = uniform(0.5, 1.5);
    else if (/gamma$/.test(name)) value = uniform(0.5, 1.5);
    else if (/(bias|beta|moving_mean)$/.test(name)) value = uniform(-0.5, 0.5);
    else if (/embeddings$/.test(name)) value = uniform(-1, 1);
    else {
      const limit = Math.sqrt(6 / (shape[shape.length - 2] + shape[shape.length - 1] || 1));
      value = uniform(-limit, limit);
    }
    weight.write(value);
    value.dispose();
  }
}

/**
 * An IO handler that writes what tf.io.browserDownloads would download
 * (model.json + ./model.weights.bin), or the weights split into `shards`
 * files as the converter splits them; the model.json is tfjs's
 * (getModelJSONForModelArtifacts, which tfjs does not export).
 */
function fileSaver(tf, dir, { browserNames, shards }) {
  return tf.io.withSaveHandler(async (artifacts) => {
    const data = Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
    const step = Math.ceil(data.length / shards / 4) * 4;
    const paths = [];
    for (let i = 0; i < shards; i += 1) {
      const name = browserNames
        ? `model.weights${shards > 1 ? `.${i + 1}` : ''}.bin`
        : `group1-shard${i + 1}of${shards}.bin`;
      fs.writeFileSync(path.join(dir, name), data.subarray(i * step, (i + 1) * step));
      paths.push(browserNames ? `./${name}` : name);
    }
    const json = {
      modelTopology: artifacts.modelTopology,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
      weightsManifest: [{ paths, weights: artifacts.weightSpecs }],
    };
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  });
}

main(async () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      model: { type: 'string', multiple: true },
      seed: { type: 'string', default: '1' },
      'browser-names': { type: 'boolean', default: false },
      shards: { type: 'string', default: '1' },
    },
  });
  if (positionals.length !== 1) throw new UsageError(USAGE);
  const seed = Number(values.seed);
  const shards = Number(values.shards);
  if (!Number.isInteger(seed)) throw new UsageError(`--seed wants an integer, got ${values.seed}`);
  if (!Number.isInteger(shards) || shards < 1 || shards > 64) {
    throw new UsageError(`--shards wants an integer in 1..64, got ${values.shards}`);
  }
  const { tf } = require('../lib/runtime/tfnode');
  const e2e = builders(tf);
  const all = { ...e2e, ...extraBuilders(tf) };
  const chosen = values.model || Object.keys(e2e);
  const unknown = chosen.filter((name) => !Object.hasOwn(all, name));
  if (unknown.length) {
    throw new UsageError(
      `unknown model ${unknown.join(', ')} (known: ${Object.keys(all).join(', ')})`,
    );
  }
  const [out] = positionals;
  for (const name of chosen) {
    const model = all[name]();
    redraw(tf, model, seed * 1000);
    const dir = path.join(out, name);
    fs.mkdirSync(dir, { recursive: true });
    const custom = values['browser-names'] || shards > 1;
    // tfjs-node's own file:// handler unless other file names are asked for
    await model.save(
      custom
        ? fileSaver(tf, dir, { browserNames: values['browser-names'], shards })
        : `file://${path.resolve(dir)}`,
    );
    model.dispose();
    process.stdout.write(`${name} -> ${path.join(dir, 'model.json')}\n`);
  }
}, USAGE);
