'use strict';
// The model registry as Node sees it: node/registry.json, generated from the
// Python registry (py/tfjs_bridge/registry.py) by `tfjs-bridge registry`.
// buildModel() is the tfjs-layers twin of the Python build_keras().
const fs = require('fs');
const path = require('path');

const REGISTRY_PATH = path.join(__dirname, '..', 'registry.json');
const registry = JSON.parse(fs.readFileSync(REGISTRY_PATH, 'utf8'));

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

function getSpec(name) {
  const spec = registry[name];
  if (!spec) throw new Error(`unknown model '${name}' (known: ${Object.keys(registry).join(', ')})`);
  return spec;
}

/** A Keras layer config ({units: 64, recurrent_activation: 'hard_sigmoid'}) in tfjs terms. */
function tfjsLayerConfig(kind, config) {
  if (kind === 'GRU' && config.reset_after) {
    throw new Error('tfjs-layers has no reset-after GRU (Keras default); this model cannot be built in Node');
  }
  const out = {};
  for (const [key, value] of Object.entries(config)) {
    out[camel(key)] = typeof value === 'string' ? camel(value) : value;
  }
  return out;
}

const LOSSES = { categorical_crossentropy: 'categoricalCrossentropy', mean_squared_error: 'meanSquaredError' };

function buildModel(tf, spec) {
  const model = tf.sequential({ name: spec.name });
  spec.layers.forEach((layer, i) => {
    const config = tfjsLayerConfig(layer.kind, layer.config);
    if (i === 0) config.inputShape = spec.input_shape;
    model.add(tf.layers[layer.kind.toLowerCase()](config));
  });
  if (spec.optimizer !== 'adam') throw new Error(`optimizer ${spec.optimizer} is not mapped to tfjs`);
  model.compile({
    optimizer: tf.train.adam(spec.learning_rate),
    loss: LOSSES[spec.loss],
    metrics: spec.metrics,
  });
  return model;
}

module.exports = { registry, getSpec, buildModel, tfjsLayerConfig };
