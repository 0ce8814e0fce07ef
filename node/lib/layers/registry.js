'use strict';
// The model registry as Node sees it: node/registry.json, generated from the
// Python registry (py/tfjs_bridge/training/registry.py) by `tfjs-bridge registry`.
// buildModel() is the tfjs-layers twin of the Python build_keras().
const fs = require('fs');
const path = require('path');
const { installKerasLayers } = require('./index');

const REGISTRY_PATH = path.join(__dirname, '..', '..', 'registry.json');
const registry = JSON.parse(fs.readFileSync(REGISTRY_PATH, 'utf8'));

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

function getSpec(name) {
  const spec = registry[name];
  if (!spec)
    throw new Error(`unknown model '${name}' (known: ${Object.keys(registry).join(', ')})`);
  return spec;
}

/** A Keras layer config ({units: 64, recurrent_activation: 'hard_sigmoid'}) in tfjs terms. */
function tfjsLayerConfig(config) {
  const out = {};
  for (const [key, value] of Object.entries(config)) {
    out[camel(key)] = typeof value === 'string' ? camel(value) : value;
  }
  return out;
}

const LOSSES = {
  categorical_crossentropy: 'categoricalCrossentropy',
  mean_squared_error: 'meanSquaredError',
};

// Keras's defaults where tfjs's differ, so a spec that leaves them out means
// what it means in Python (training/registry.py states the tfjs ones explicitly).
const KERAS_DEFAULTS = {
  GRU: { recurrentActivation: 'sigmoid', resetAfter: true },
  LSTM: { recurrentActivation: 'sigmoid', unitForgetBias: true },
};

// Keras layer classes -> tf.layers factories. GRU, LSTM and Bidirectional
// are ours (index.js: Keras's reset-after GRU, a faster time loop for both,
// and both directions of a Bidirectional in one loop).
const TFJS_FACTORIES = { SimpleRNN: 'simpleRNN', Dense: 'dense', Dropout: 'dropout' };

/** One registry layer ({kind, config, wraps}) as a tfjs layer. */
function buildLayer(tf, layer, extra = {}) {
  const config = { ...KERAS_DEFAULTS[layer.kind], ...tfjsLayerConfig(layer.config), ...extra };
  if (layer.wraps) config.layer = buildLayer(tf, layer.wraps);
  const { GRU, LSTM, Bidirectional } = installKerasLayers(tf);
  const ourLayers = { GRU, LSTM, Bidirectional };
  const ours = ourLayers[layer.kind];
  if (ours) return new ours(config);
  const factory = TFJS_FACTORIES[layer.kind];
  const known = [...Object.keys(ourLayers), ...Object.keys(TFJS_FACTORIES)].join(', ');
  if (!factory) throw new Error(`layer kind ${layer.kind} is not mapped to tfjs (known: ${known})`);
  return tf.layers[factory](config);
}

function buildModel(tf, spec) {
  const model = tf.sequential({ name: spec.name });
  spec.layers.forEach((layer, i) => {
    model.add(buildLayer(tf, layer, i === 0 ? { inputShape: spec.input_shape } : {}));
  });
  if (spec.optimizer !== 'adam')
    throw new Error(`optimizer ${spec.optimizer} is not mapped to tfjs`);
  model.compile({
    optimizer: tf.train.adam(spec.learning_rate),
    loss: LOSSES[spec.loss],
    metrics: spec.metrics,
  });
  return model;
}

module.exports = { registry, getSpec, buildModel, buildLayer };
