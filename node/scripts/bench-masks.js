'use strict';
// Masked recurrent layers on tfjs-node: tfjs's stock loop against tfjs-bridge's
// fast loop (lib/layers/fast_loop.js), side by side in one process, median
// milliseconds per prediction at batch 1, 32 and 256. Inputs are padded to
// random lengths, so the masks act.
//
//   node node/scripts/bench-masks.js
const { performance } = require('perf_hooks');
const { main } = require('../lib/runtime/cli');

const USAGE = 'usage: bench-masks.js  (prints stock vs fast loop timings for masked models)';

function models(tf, { GRU, LSTM, Bidirectional }) {
  return {
    'Masking -> GRU(64), 28 steps': {
      make: () =>
        tf.sequential({
          layers: [
            tf.layers.masking({ maskValue: 0, inputShape: [28, 28] }),
            new GRU({ units: 64, resetAfter: true, recurrentActivation: 'sigmoid' }),
            tf.layers.dense({ units: 10 }),
          ],
        }),
      input: (b) => {
        const lengths = tf.randomUniform([b, 1, 1], 5, 29, 'int32', 1);
        const real = tf.less(tf.range(0, 28).reshape([1, 28, 1]), lengths);
        return tf.mul(tf.randomUniform([b, 28, 28], 0, 1, 'float32', 2), tf.cast(real, 'float32'));
      },
    },
    'Embedding(mask_zero) -> Bidirectional(LSTM(32)), 100 tokens': {
      make: () =>
        tf.sequential({
          layers: [
            tf.layers.embedding({
              inputDim: 1000,
              outputDim: 32,
              maskZero: true,
              inputShape: [100],
            }),
            new Bidirectional({ layer: new LSTM({ units: 32, recurrentActivation: 'sigmoid' }) }),
            tf.layers.dense({ units: 1 }),
          ],
        }),
      input: (b) => {
        const lengths = tf.randomUniform([b, 1], 10, 101, 'int32', 3);
        const real = tf.less(tf.range(0, 100).reshape([1, 100]), lengths);
        return tf.mul(tf.randomUniform([b, 100], 1, 1000, 'int32', 4), tf.cast(real, 'int32'));
      },
    },
  };
}

function median(fn, reps) {
  for (let i = 0; i < 3; i++) fn();
  const times = [];
  for (let i = 0; i < reps; i++) {
    const started = performance.now();
    fn();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[times.length >> 1];
}

main(() => {
  const { tf } = require('../lib/runtime/tfnode');
  const { installKerasLayers } = require('../lib/layers');
  const warn = console.warn;
  console.warn = () => {}; // (tfjs's note on orthogonal initialisers of large matrices)
  const cases = models(tf, installKerasLayers(tf));
  for (const [name, { make, input }] of Object.entries(cases)) {
    const model = make();
    process.stdout.write(`${name}\n`);
    for (const batch of [1, 32, 256]) {
      const x = input(batch);
      const predict = () => {
        const y = model.predict(x, { batchSize: batch });
        y.dataSync(); // (waits for the values)
        y.dispose();
      };
      const time = (loop) => {
        process.env.TFJS_BRIDGE_RNN_LOOP = loop;
        return median(predict, batch === 256 ? 10 : 25);
      };
      const [stock, fast] = [time('stock'), time('fast')];
      const line = `  B=${batch}: stock loop ${stock.toFixed(1)} ms, fast loop ${fast.toFixed(1)} ms`;
      process.stdout.write(`${line} (${(stock / fast).toFixed(2)}x)\n`);
    }
  }
  console.warn = warn;
}, USAGE);
